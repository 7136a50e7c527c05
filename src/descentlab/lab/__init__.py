"""The lab: run optimizers on problems, keep every result in an embedded store, and report.

A run is a frozen :class:`RunSpec`; :func:`run_spec` trains it and returns a :class:`RunResult`;
:class:`RunStore` keeps results in SQLite inside the output folder; :func:`run_comparison` runs many
specs (skipping the finished ones, optionally in parallel); :func:`write_report` renders the store.
"""

from descentlab.lab.comparison import run_comparison
from descentlab.lab.runner import RunResult, run_spec
from descentlab.lab.spec import RunSpec
from descentlab.lab.store import RunStore

__all__ = ["RunResult", "RunSpec", "RunStore", "run_comparison", "run_spec", "write_report"]


def write_report(out_dir, **kwargs):
    """Render the report of the store in ``out_dir``; see :func:`descentlab.lab.report.write_report`."""
    from descentlab.lab.report import write_report as _write_report

    return _write_report(out_dir, **kwargs)
