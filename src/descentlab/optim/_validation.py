"""The one place where hyperparameters are validated, for the defaults and for every param group.

An algorithm's transforms declare each hyperparameter with its check (``_transform.Hyperparameter``),
from which the engine fills the class attribute ``hyperparameters`` (group key -> check, on top of
:data:`COMMON_CHECKS`); optimizers outside the engine (Newton, line search) set it with
:func:`hyperparameter_checks`. Cross-field rules live in :meth:`ValidatedOptimizer.check_group`.
:class:`ValidatedOptimizer` runs them on the constructor defaults, on every group the constructor or
``add_param_group`` adds, and on every group ``load_state_dict`` would load (before loading it). Each
error names the parameter, the bad value and what is allowed: ``ValueError`` for a value out of range
or not finite, ``TypeError`` for a value of the wrong type (a ``str`` for a float, ``"yes"`` for a bool).

Policies chosen here:

- every real hyperparameter must be finite (``inf``/``nan`` are refused);
- ``lr`` must be in [0, :data:`MAX_LR`]; 1-element tensors are accepted for reals, as torch allows;
- ``eps`` must be > 0: every optimizer with an ``eps`` divides by ``something + eps`` where
  ``something`` is 0 for a coordinate whose gradients were all 0, so ``eps = 0`` would make it
  ``0 / 0 = NaN`` even with ``lr = 0``. (torch.optim accepts ``eps = 0``; we do not.) The same
  reason applies to an eps the parameter dtype rounds to 0 (the default 1e-8 in float16): the update
  rules use ``max(eps, torch.finfo(dtype).tiny)``, i.e. eps is raised to the dtype's smallest normal
  number (6.1e-5 in float16; see ``_rules.scaling.nonvanishing_eps``). The group keeps the eps given,
  and every eps >= ``tiny`` (all defaults in float32, float64 and bfloat16) is used unchanged, so
  those results stay bit-for-bit torch.optim's. (torch.optim gives NaN there.)
- boolean flags must be ``True`` or ``False`` (``foreach`` and ``fused`` may also be ``None``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
from torch import Tensor
from torch.optim import Optimizer

# The largest accepted lr: the engine applies -lr * scale as one float32-representable alpha (torch
# converts it to the parameter dtype), and float32/bfloat16 end at 3.4e38, so 1e30 leaves eight orders of
# magnitude for the algorithm's scale (e.g. 1 / (1 - beta1^t)). Larger values overflow inside torch with
# an error that names nothing; no useful lr is anywhere near this bound.
MAX_LR = 1e30

Check = Callable[[str, Any], None]


def _as_real(name: str, value: Any) -> float:
    """``value`` as a finite float; a 1-element tensor counts as a number (torch allows tensor lr)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"Tensor {name} must be 1-element: {name} must be a number or a 1-element tensor, "
                f"got shape {tuple(value.shape)}"
            )
        number = float(value.item())
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    else:
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range (10**400) is as unusable as inf
            number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


@dataclass(frozen=True)
class Real:
    """A finite real in an interval; ``None`` bounds are open-ended."""

    low: float | None = 0.0
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __call__(self, name: str, value: Any) -> None:
        number = _as_real(name, value)
        above = self.low is None or (number > self.low if self.low_open else number >= self.low)
        below = self.high is None or (number < self.high if self.high_open else number <= self.high)
        if not (above and below):
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")

    def describe(self) -> str:
        """The allowed range, as the error message prints it."""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"{'<' if self.high_open else '<='} {self.high:g}"


@dataclass(frozen=True)
class LearningRate:
    """``lr`` in [0, MAX_LR] (``(0, MAX_LR]`` with ``positive``); see :data:`MAX_LR` for the bound."""

    positive: bool = False

    def __call__(self, name: str, value: Any) -> None:
        number = _as_real(name, value)
        if not (number > 0.0 if self.positive else number >= 0.0):
            raise ValueError(f"{name} must be {'>' if self.positive else '>='} 0, got {value!r}")
        if number > MAX_LR:
            raise ValueError(
                f"{name} must be <= {MAX_LR:g} (larger steps overflow float32 inside the update), "
                f"got {value!r}"
            )


@dataclass(frozen=True)
class Flag:
    """``True`` or ``False`` (or ``None`` with ``optional``); truthy strings and numbers are refused."""

    optional: bool = False

    def __call__(self, name: str, value: Any) -> None:
        if isinstance(value, (bool, np.bool_)) or (self.optional and value is None):
            return
        allowed = "True, False or None" if self.optional else "True or False"
        raise TypeError(f"{name} must be {allowed}, got {value!r}")


# The largest accepted integer: counts reach torch as int64 (torch.randint, generator seeds), where larger
# values fail with an overflow error that names nothing.
MAX_INTEGER = 2**63 - 1


@dataclass(frozen=True)
class Integer:
    """An ``int`` (not a bool) in [``low``, :data:`MAX_INTEGER`]."""

    low: int = 0

    def __call__(self, name: str, value: Any) -> None:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        if value < self.low:
            raise ValueError(f"{name} must be an integer >= {self.low}, got {value!r}")
        if value > MAX_INTEGER:
            raise ValueError(f"{name} must be an integer <= 2**63 - 1 (torch's int64), got {value!r}")


@dataclass(frozen=True)
class Choice:
    """One of ``values``."""

    values: tuple[Any, ...]

    def __call__(self, name: str, value: Any) -> None:
        if value not in self.values:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, self.values))}; got {value!r}")


@dataclass(frozen=True)
class Pair:
    """A pair ``(x0, x1)`` whose entries pass ``entry`` (checked as ``name[0]`` and ``name[1]``)."""

    entry: Check

    def __call__(self, name: str, value: Any) -> None:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ValueError(f"{name} must be a pair ({name}[0], {name}[1]), got {value!r}")
        self.entry(f"{name}[0]", value[0])
        self.entry(f"{name}[1]", value[1])


UNIT_INTERVAL = Real(0.0, 1.0, high_open=True)  # [0, 1): decay rates of moving averages
CLOSED_UNIT_INTERVAL = Real(0.0, 1.0)
NON_NEGATIVE = Real(0.0)
POSITIVE = Real(0.0, low_open=True)
OPEN_UNIT_INTERVAL = Real(0.0, 1.0, low_open=True, high_open=True)

# Checks every optimizer gets for the keys its groups hold (a class's ``hyperparameters`` override them).
COMMON_CHECKS: Mapping[str, Check] = {
    "lr": LearningRate(),
    "eps": POSITIVE,
    "weight_decay": NON_NEGATIVE,
    "momentum": NON_NEGATIVE,
    "betas": Pair(UNIT_INTERVAL),
    "maximize": Flag(),
    "foreach": Flag(optional=True),
    "fused": Flag(optional=True),
    "capturable": Flag(),
    "differentiable": Flag(),
    "amsgrad": Flag(),
    "centered": Flag(),
    "nesterov": Flag(),
    "decoupled_weight_decay": Flag(),
}


def hyperparameter_checks(**checks: Check) -> Mapping[str, Check]:
    """A read-only table of checks by group key, for a class's ``hyperparameters`` attribute."""
    return MappingProxyType(checks)


class ValidatedOptimizer(Optimizer):
    """A ``torch.optim.Optimizer`` whose defaults and param groups are validated (see the module).

    Subclasses declare ``hyperparameters`` (group key -> check, on top of :data:`COMMON_CHECKS`) and
    override :meth:`check_group` for rules that involve several keys.
    """

    hyperparameters: ClassVar[Mapping[str, Check]] = {}

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self.validate_group(defaults)
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        """Raise for combinations of keys that are invalid together (each key is already valid)."""

    def validate_group(self, group: Mapping[str, Any]) -> None:
        """Run every declared check on the keys ``group`` holds, then :meth:`check_group`."""
        checks = {**COMMON_CHECKS, **self.hyperparameters}
        for name, value in group.items():
            if name in checks:
                checks[name](name, value)
        self.check_group(dict(group))

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """``torch.optim.Optimizer.add_param_group``, then validate the group with its defaults filled in."""
        super().add_param_group(param_group)
        try:
            self.validate_group(self.param_groups[-1])
        except (TypeError, ValueError, RuntimeError):
            self.param_groups.pop()
            raise

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """``torch.optim.Optimizer.load_state_dict``, refusing invalid saved groups before loading any."""
        for saved in state_dict["param_groups"]:
            self.validate_group({**self.defaults, **saved})
        super().load_state_dict(state_dict)


def check_non_negative(name: str, value: Any) -> None:
    """Raise unless ``value`` is a finite number >= 0 (for arguments that are not group keys)."""
    NON_NEGATIVE(name, value)


def check_positive(name: str, value: Any) -> None:
    """Raise unless ``value`` is a finite number > 0 (for arguments that are not group keys)."""
    POSITIVE(name, value)


def check_unit_interval(name: str, value: Any, *, closed_right: bool = False) -> None:
    """Raise unless ``value`` is in [0, 1) (or [0, 1] with ``closed_right``)."""
    (CLOSED_UNIT_INTERVAL if closed_right else UNIT_INTERVAL)(name, value)
