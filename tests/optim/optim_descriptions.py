"""The table of optimizer descriptions that drives every contract test (adding an optimizer = a row).

Each :class:`Case` names a descentlab class, non-default hyperparameters, the float64 reference step
function written from the paper (tests/reference), the torch.optim class it must match (if torch has it
and the variant is torch's), and hyperparameters that must be rejected.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Case:
    """One row: an optimizer configuration and its oracles."""

    id: str
    cls: type
    hyper: dict
    reference: object  # reference step function, or None
    torch_cls: type | None = None
    # overrides for the second param group in the multi-group problem (exercises per-group hyperparameters)
    second_group: dict = field(default_factory=dict)
    bad: list = field(default_factory=list)  # list of (kwargs, substring expected in the ValueError)
    steps: int = 100


def _collect_cases() -> list[Case]:
    """Concatenate ``CASES`` of every ``cases_*.py`` module beside this file (one module per family)."""
    cases = []
    for path in sorted(Path(__file__).parent.glob("cases_*.py")):
        cases.extend(importlib.import_module(path.stem).CASES)
    return cases


CASES = _collect_cases()
