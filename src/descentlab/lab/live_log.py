"""Live logging: every step record of a run, written out while it trains, so a long comparison can be
watched (``descentlab compare --log tensorboard,csv``).

The store stays the source of truth: these files are a view that grows during the run and is never read
back. Per run, in the results folder:

- ``tensorboard/<group>/<run>/``: TensorBoard event files (``tensorboard --logdir <out>/tensorboard``),
  with the scalars ``loss`` (the minibatch loss), ``lr``, ``grad_norm``, ``update_norm``,
  ``validation/<metric>`` and ``train_subset/<metric>`` at ``step`` = the training step. TensorBoard keeps
  scalars as float32; the store keeps full precision.
- ``live/<group>/<run>.csv``: one row per step record, the columns of
  :data:`~descentlab.lab.records.SCALAR_COLUMNS` then ``validation/<metric>`` and ``train_subset/<metric>``
  for the metrics of the start record (every evaluation of a problem reports the same keys); an empty
  cell is a value the record lacks. Each row is written whole and flushed, so a reader sees whole rows.

``<group>`` is the comparison's name (``descentlab run``: the problem's), ``<run>`` the configuration
label, the seed and the start of the run id (:func:`run_name`). A run trained again (after an
interruption) starts its files afresh. Logging is no part of a run: run ids are the same with or without.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from descentlab.lab.fields import SettingError
from descentlab.lab.labels import configuration_label
from descentlab.lab.records import SCALAR_COLUMNS, StepRecord
from descentlab.lab.runner import RunResult, run_spec
from descentlab.lab.spec import RunSpec

LOG_KINDS = ("csv", "tensorboard")
"""What ``--log`` can write; ``none`` (the default) writes nothing."""

TENSORBOARD_FOLDER, CSV_FOLDER = "tensorboard", "live"
"""Folders of the results folder holding the event files and the CSV files."""

TENSORBOARD_FLUSH_SECONDS = 5
"""TensorBoard's writer buffers events in a thread; 5 s (its default is 120) keeps the plots live."""

# Characters that some file system refuses in a name (Windows' list, plus control characters).
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_MAX_LABEL = 120  # names stay well below the usual 255-byte limit with the seed and id appended


def parse_log(value: Any) -> tuple[str, ...]:
    """The kinds ``--log`` asks for: ``none``, ``csv``, ``tensorboard`` or a comma list (or a list).

    Raises:
        SettingError: naming ``--log`` and the bad value.
    """
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    kinds = [str(item).strip().lower() for item in items if str(item).strip()]
    allowed = {*LOG_KINDS, "none"}
    if not kinds or any(kind not in allowed for kind in kinds) or ("none" in kinds and len(kinds) > 1):
        raise SettingError(
            f"--log must be none, {', '.join(LOG_KINDS)}, or a comma list such as csv,tensorboard; "
            f"got {value!r}"
        )
    chosen = tuple(kind for kind in LOG_KINDS if kind in kinds)
    if "tensorboard" in chosen:
        require_tensorboard()
    return chosen


def require_tensorboard() -> None:
    """Check that TensorBoard's writer can be imported, before any training starts.

    Raises:
        SettingError: telling how to install it.
    """
    try:
        import tensorboard  # noqa: F401  (torch's writer imports it lazily: test it by name)
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError as error:
        raise SettingError(
            f"--log tensorboard needs the tensorboard package ({error}); "
            "install it with: pip install 'descentlab[tensorboard]'"
        ) from None


def safe_name(text: str, limit: int = _MAX_LABEL) -> str:
    """``text`` as a file name: unsafe characters become ``_``, at most ``limit`` characters."""
    name = _UNSAFE.sub("_", text).strip(" .")[:limit].rstrip(" .")
    return name or "_"


def run_name(spec: RunSpec) -> str:
    """The file name of a run's logs: ``SGD lr=0.1 · 40 steps · seed 0 · 3f2a9c1d``.

    The id part keeps apart configurations whose labels agree (see :mod:`descentlab.lab.labels`).
    """
    return f"{safe_name(configuration_label(spec))} · seed {spec.seed} · {spec.run_id[:8]}"


TENSORBOARD_FIELDS = ("loss", "lr", "grad_norm", "update_norm")
"""Step-record fields plotted in TensorBoard, besides the metrics."""


def flatten(record: StepRecord) -> dict[str, Any]:
    """The record as one flat dict: its scalar fields, then ``validation/<metric>`` and
    ``train_subset/<metric>`` for the metrics it holds."""
    flat = {name: getattr(record, name) for name in SCALAR_COLUMNS}
    for prefix, metrics in (("validation", record.metrics), ("train_subset", record.train_metrics)):
        flat.update({f"{prefix}/{key}": value for key, value in (metrics or {}).items()})
    return flat


class CsvLog:
    """A run's CSV: the header at the first record, then one whole, flushed row per record."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("w", newline="", encoding="utf-8")
        self.columns: list[str] | None = None

    def _row(self, values: list[Any]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(values)
        # one write and a flush per row: a reader tailing the file never sees half a row
        self.file.write(buffer.getvalue())
        self.file.flush()

    def write(self, record: StepRecord) -> None:
        """Append ``record`` (the first record also fixes and writes the columns)."""
        flat = flatten(record)
        if self.columns is None:
            self.columns = list(flat)
            self._row(self.columns)
        # csv writes None as an empty cell and a float as its repr, which reads back exactly
        self._row([flat.get(name) for name in self.columns])

    def close(self) -> None:
        """Close the file."""
        self.file.close()


class TensorBoardLog:
    """A run's TensorBoard event files, one scalar per tag and record."""

    def __init__(self, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # a run trained again starts afresh: an interrupted attempt's event file left beside the new one
        # doubles its steps for any reader that does not purge them as TensorBoard does
        shutil.rmtree(folder, ignore_errors=True)
        # torch's queue of 10 events made each add_scalar wait for the writer thread: 400 us a record
        # (4-6 scalars) against 130 us with room for a whole run's records; disk flushes stay timed
        self.writer = SummaryWriter(str(folder), max_queue=1000, flush_secs=TENSORBOARD_FLUSH_SECONDS)

    def write(self, record: StepRecord) -> None:
        """Add the record's scalars at its step."""
        for tag, value in flatten(record).items():
            if value is not None and (tag in TENSORBOARD_FIELDS or "/" in tag):
                self.writer.add_scalar(tag, float(value), record.step)

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()


@contextlib.contextmanager
def live_log(
    out_dir: str | Path, kinds: Sequence[str], group: str, spec: RunSpec
) -> Iterator[Callable[[StepRecord], None]]:
    """A record hook writing ``spec``'s records as ``kinds`` asks, for the duration of the block."""
    out, name = Path(out_dir), run_name(spec)
    sinks: list[CsvLog | TensorBoardLog] = []
    try:
        if "csv" in kinds:
            sinks.append(CsvLog(out / CSV_FOLDER / safe_name(group) / f"{name}.csv"))
        if "tensorboard" in kinds:
            sinks.append(TensorBoardLog(out / TENSORBOARD_FOLDER / safe_name(group) / name))

        def write(record: StepRecord) -> None:
            for sink in sinks:
                sink.write(record)

        yield write
    finally:
        for sink in sinks:
            sink.close()


@dataclass(frozen=True)
class LiveLogRunner:
    """Trains a spec with :func:`run_spec` while logging it live; picklable, so each worker of a
    parallel comparison writes the files of the runs it trains.

    Attributes:
        out_dir: the results folder.
        kinds: what to write (:data:`LOG_KINDS`).
        group: the folder the runs' logs go to (the comparison's name, or the problem's).
    """

    out_dir: str
    kinds: tuple[str, ...]
    group: str

    def __post_init__(self) -> None:
        parse_log(self.kinds)  # a bad kind, or tensorboard missing, fails here and not in a worker

    def __call__(self, spec: RunSpec) -> RunResult:
        """Train ``spec``, writing each step record as it is kept."""
        with live_log(self.out_dir, self.kinds, self.group, spec) as on_record:
            return run_spec(spec, on_record=on_record)
