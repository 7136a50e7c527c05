"""The schedule protocol: a value as a function of the step, plus an optional metric channel.

A schedule is a callable ``schedule(step) -> float`` for integer ``step >= 0``. Every schedule in this
package is a small frozen dataclass: it pickles, deep-copies and compares by value, and holds no lambdas.

Most schedules are pure functions of the step. Performance scheduling (:class:`~descentlab.schedules.
performance.Plateau`) also depends on metrics reported during training; to let such a schedule sit
inside a composition (a warm-up, a sequence), every schedule answers three more questions:

- :attr:`Schedule.uses_metric` -- does any part of it consume metrics?
- :meth:`Schedule.report` ``(metric, step)`` -- a metric measured after ``step``; composites forward it to
  the part that is active at that step, pure schedules ignore it.
- :meth:`Schedule.state_dict` / :meth:`Schedule.load_state_dict` -- the mutable part (empty for pure
  schedules), as plain Python numbers so it can be saved in a checkpoint.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


class Schedule:
    """Base class of every schedule: ``__call__(step) -> float`` plus the metric protocol.

    Subclasses are frozen dataclasses that implement :meth:`value_at`. What the returned number means is
    decided by whoever applies it: :class:`~descentlab.schedules.scheduler.ScheduledLR` multiplies it by
    each param group's initial learning rate by default (so ``Cosine(1000)`` going from 1 to 0 is a
    multiplier), or uses it as the absolute learning rate with ``relative=False``.
    """

    def value_at(self, step: int) -> float:
        """Return the schedule's value at ``step`` (``step >= 0`` is already checked)."""
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        """Return the value at ``step``; raises ``ValueError`` for a negative or non-integer step."""
        return self.value_at(check_step(step))

    @property
    def uses_metric(self) -> bool:
        """Whether some part of this schedule reacts to reported metrics (False for pure schedules)."""
        return False

    def report(self, metric: float, step: int) -> None:
        """Receive a metric measured after ``step``; pure schedules ignore it."""
        del metric, step

    def state_dict(self) -> dict[str, Any]:
        """Return the mutable state as plain numbers (empty for pure schedules)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if state:
            raise ValueError(f"{type(self).__name__} is a pure schedule and has no state, got {state!r}")


def check_step(step: int) -> int:
    """Return ``step`` as an ``int`` after checking that it is an integer in [0, MAX_STEPS]."""
    whole = isinstance(step, numbers.Integral)
    whole = whole or (isinstance(step, numbers.Real) and float(step).is_integer())
    if isinstance(step, bool) or not whole or not 0 <= step <= MAX_STEPS:
        raise ValueError(f"step must be an integer >= 0 (and <= 2**63 - 1), got {step!r}")
    return int(step)


def _as_number(name: str, value: Any) -> float:
    """``value`` as a float; ``TypeError`` naming ``name`` for text, ``None``, bools and the like."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond float range (10**400) is as unusable as inf
        return math.inf


def check_positive(name: str, value: float) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number > 0 (``TypeError`` for
    a value that is not a number)."""
    number = _as_number(name, value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_finite(name: str, value: float) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number (``TypeError`` for a
    value that is not a number)."""
    if not math.isfinite(_as_number(name, value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


# The most steps a schedule accepts: a step count beyond int64 is never reached, and one beyond float
# range (10**400) makes the schedules' float arithmetic raise OverflowError.
MAX_STEPS = 2**63 - 1


def check_steps(name: str, value: int, minimum: int = 1) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer in [``minimum``, MAX_STEPS]."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value > MAX_STEPS:
        raise ValueError(f"{name} must be an integer <= 2**63 - 1, got {value!r}")
