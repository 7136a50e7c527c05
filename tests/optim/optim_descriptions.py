"""The table of optimizer descriptions that drives every contract test (adding an optimizer = a row).

Each :class:`Case` names a descentlab class, non-default hyperparameters, the float64 reference written
from the paper (tests/reference), the torch.optim class it must match (if torch has it and the variant is
torch's), and hyperparameters that must be rejected. The reference receives every hyperparameter from the
case: the row's ``hyper`` over its class's documented defaults, which each ``cases_*.py`` module writes
down in ``DEFAULTS`` (from torch's documentation or the paper, never read from the library), so a wrong
library default fails the rows that leave that hyperparameter out.

A check that does not apply to a row is declared in ``not_applicable`` with the reason; the tests skip it
with that reason and verify the claim (test_not_applicable_declarations_hold).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from descentlab.optim.registry import step_protocol

NOT_APPLICABLE_CHECKS = {
    "foreach": "foreach=True and foreach=False give identical results",
    "maximize": "maximize=True on -loss equals maximize=False on loss",
    "complex": "complex parameters are updated as real pairs",
    "none-grad": "a parameter without a gradient on some steps is left alone on those steps",
    "param-groups": "several param groups, added at construction and by add_param_group",
    "cache-blocking": "cache-blocked updates equal whole-tensor updates",
    "torch-zero-size": "the torch.optim class steps a zero-size parameter (the torch comparisons hold one)",
}
"""The contract checks a row may declare not applicable, with what each checks."""


@dataclass
class Case:
    """One row: an optimizer configuration and its oracles."""

    id: str
    cls: type
    hyper: dict
    reference: object  # reference step function (see tests/reference/__init__.py), or None
    torch_cls: type | None = None
    # overrides for the second param group in the multi-group problem (exercises per-group hyperparameters)
    second_group: dict = field(default_factory=dict)
    bad: list = field(default_factory=list)  # list of (kwargs, substring expected in the ValueError)
    steps: int = 100
    # "tensor": the reference steps each parameter tensor (elementwise rules); "group": it steps the flat
    # vector of each param group (dot products, Hessians, line searches, snapshots); "shaped": per tensor,
    # in the parameter's shape (rows and columns: Adafactor)
    reference_scope: str = "tensor"
    not_applicable: dict = field(default_factory=dict)  # check name (NOT_APPLICABLE_CHECKS) -> why
    defaults: dict = field(default_factory=dict)  # filled from the module's DEFAULTS for ``cls``
    # constructor arguments that torch_cls lacks, besides ``variant`` (their defaults keep torch's rule)
    extra_arguments: tuple = ()

    @property
    def protocol(self) -> str:
        """How ``cls.step`` must be called (``step_protocol``, see descentlab.lab.protocols)."""
        return step_protocol(self.cls)

    def reference_hypers(self, group_count: int) -> list[dict]:
        """Every hyperparameter of each param group, from the case alone (defaults written in the test)."""
        first = {**self.defaults, **self.hyper}
        return [first] + [{**first, **self.second_group}] * (group_count - 1)

    def applies(self, check: str) -> bool:
        """Whether the contract check ``check`` applies to this row (see ``not_applicable``)."""
        return check not in self.not_applicable


def _collect_cases() -> list[Case]:
    """Concatenate ``CASES`` of every ``cases_*.py`` module beside this file (one module per family)."""
    cases = []
    for path in sorted(Path(__file__).parent.glob("cases_*.py")):
        module = importlib.import_module(path.stem)
        for case in module.CASES:
            case.defaults = {**module.DEFAULTS[case.cls], **case.defaults}
            cases.append(case)
    return cases


CASES = _collect_cases()
