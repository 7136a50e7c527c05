"""Pure schedules: closed-form functions of the step.

Every class here is a frozen dataclass with ``__call__(step) -> float``; ``t`` below is the step
(``t = 0, 1, 2, ...``). ``initial`` is the value at ``t = 0`` and defaults to 1, so with the default the
schedule is a multiplier of each param group's initial learning rate (see
:class:`~descentlab.schedules.scheduler.ScheduledLR`); pass an absolute value instead when you apply the
schedule with ``relative=False``.

References:
    Géron, *Hands-On Machine Learning*, 3rd ed., ch. 11 ("Learning Rate Scheduling": power, exponential,
    piecewise constant and performance scheduling).
    Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017,
    https://arxiv.org/abs/1608.03983.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from descentlab.schedules.base import Schedule, check_finite, check_positive, check_steps


@dataclass(frozen=True)
class Constant(Schedule):
    """The same value at every step: ``f(t) = value``."""

    value: float = 1.0

    def __post_init__(self) -> None:
        check_finite("value", self.value)

    def value_at(self, step: int) -> float:
        """Return the constant."""
        return float(self.value)


@dataclass(frozen=True)
class Power(Schedule):
    """Power scheduling: ``f(t) = initial / (1 + t / scale_steps) ** exponent``.

    With ``exponent = 1`` the value halves after ``scale_steps`` steps, thirds after ``2 * scale_steps``;
    Géron's "power scheduling" uses a general ``exponent`` ``c`` (typically 1).
    """

    scale_steps: float
    exponent: float = 1.0
    initial: float = 1.0

    def __post_init__(self) -> None:
        check_positive("scale_steps", self.scale_steps)
        check_finite("exponent", self.exponent)
        if self.exponent < 0:
            raise ValueError(f"exponent must be >= 0 (a decay), got {self.exponent!r}")
        check_finite("initial", self.initial)

    def value_at(self, step: int) -> float:
        """Return ``initial / (1 + t/s)^c``."""
        # A negative power underflows to 0 where the positive one would overflow (and raise).
        return self.initial * (1.0 + step / self.scale_steps) ** -self.exponent


@dataclass(frozen=True)
class Exponential(Schedule):
    """Exponential scheduling: ``f(t) = initial * factor ** (t / scale_steps)``.

    With the default ``factor = 0.1`` the value drops tenfold every ``scale_steps`` steps, smoothly.
    """

    scale_steps: float
    factor: float = 0.1
    initial: float = 1.0

    def __post_init__(self) -> None:
        check_positive("scale_steps", self.scale_steps)
        check_positive("factor", self.factor)
        check_finite("initial", self.initial)

    def value_at(self, step: int) -> float:
        """Return ``initial * factor^(t/s)``; a growing value beyond float range is +-inf, not an error."""
        try:
            return self.initial * self.factor ** (step / self.scale_steps)
        except OverflowError:  # factor > 1 only: a factor < 1 underflows to 0 instead
            return math.copysign(math.inf, self.initial) if self.initial else 0.0


@dataclass(frozen=True)
class PiecewiseConstant(Schedule):
    """Piecewise constant scheduling: ``values[i]`` for ``boundaries[i-1] <= t < boundaries[i]``.

    ``boundaries`` are strictly increasing positive steps, and there is one more value than boundaries:
    ``PiecewiseConstant((5, 15), (1.0, 0.1, 0.01))`` is 1 for steps 0-4, 0.1 for 5-14, 0.01 from 15 on.
    """

    boundaries: Sequence[int]
    values: Sequence[float]

    def __post_init__(self) -> None:
        for name in ("boundaries", "values"):
            given = getattr(self, name)
            if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
                raise TypeError(f"{name} must be a list or tuple, got {given!r}")
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"values needs exactly one more entry than boundaries, got {len(self.values)} values "
                f"{self.values!r} for {len(self.boundaries)} boundaries {self.boundaries!r}"
            )
        for index, value in enumerate(self.values):
            check_finite(f"values[{index}]", value)
        object.__setattr__(self, "boundaries", tuple(self.boundaries))
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        for index, boundary in enumerate(self.boundaries):
            check_steps(f"boundaries[{index}]", boundary)
        if any(b <= a for a, b in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must be strictly increasing, got {self.boundaries!r}")

    def value_at(self, step: int) -> float:
        """Return the value of the interval containing ``step``."""
        return self.values[bisect.bisect_right(self.boundaries, step)]


@dataclass(frozen=True)
class Anneal(Schedule):
    """Base of the schedules that go from ``initial`` to ``final`` over ``total_steps``, then stay there.

    ``f(t) = final + (initial - final) * shape(min(t, T) / T)`` with ``T = total_steps``, where
    ``shape`` falls from 1 at progress 0 to 0 at progress 1; each subclass names its shape.
    """

    total_steps: int
    initial: float = 1.0
    final: float = 0.0

    def __post_init__(self) -> None:
        check_steps("total_steps", self.total_steps)
        check_finite("initial", self.initial)
        check_finite("final", self.final)

    def shape(self, progress: float) -> float:
        """The fraction of ``initial - final`` still left at ``progress`` in [0, 1]."""
        raise NotImplementedError

    def value_at(self, step: int) -> float:
        """Return ``final + (initial - final) * shape(progress)``."""
        progress = min(step, self.total_steps) / self.total_steps
        return self.final + (self.initial - self.final) * self.shape(progress)


@dataclass(frozen=True)
class Cosine(Anneal):
    """Cosine annealing from ``initial`` to ``final`` over ``total_steps``, then ``final``.

    ``f(t) = final + (initial - final) * (1 + cos(pi * min(t, T) / T)) / 2`` with ``T = total_steps``;
    this equals torch's ``CosineAnnealingLR`` (``eta_min = final``) for ``t <= T``. After ``T`` torch's
    recursive form climbs back up; this one stays at ``final``.
    """

    def shape(self, progress: float) -> float:
        """Half a cosine period: ``(1 + cos(pi * progress)) / 2``."""
        return (1.0 + math.cos(math.pi * progress)) / 2.0


@dataclass(frozen=True)
class CosineRestarts(Schedule):
    """Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017).

    Cycle ``i`` (``i = 0, 1, ...``) lasts ``T_i = period * period_factor ** i`` steps; inside it, with
    ``t_cur`` steps since the restart, ``f = final + (peak_i - final) * (1 + cos(pi * t_cur / T_i)) / 2``
    and ``peak_i = initial * peak_decay ** i``. With ``peak_decay = 1`` this is torch's
    ``CosineAnnealingWarmRestarts(T_0=period, T_mult=period_factor, eta_min=final)``.
    """

    period: int
    initial: float = 1.0
    final: float = 0.0
    period_factor: int = 1
    peak_decay: float = 1.0

    def __post_init__(self) -> None:
        check_steps("period", self.period)
        check_steps("period_factor", self.period_factor)
        check_finite("initial", self.initial)
        check_finite("final", self.final)
        check_positive("peak_decay", self.peak_decay)
        if self.peak_decay > 1:  # growing peaks overflow float after a few hundred restarts
            raise ValueError(f"peak_decay must be in (0, 1] (a decay of the peaks), got {self.peak_decay!r}")

    def cycle(self, step: int) -> tuple[int, int, int]:
        """Return ``(cycle index, steps since the last restart, cycle length)`` at ``step``."""
        if self.period_factor == 1:
            return step // self.period, step % self.period, self.period
        # Integer arithmetic, not torch's float logarithm, so cycle boundaries are exact at any step.
        index, since_restart, length = 0, step, self.period
        while since_restart >= length:
            since_restart -= length
            length *= self.period_factor
            index += 1
        return index, since_restart, length

    def value_at(self, step: int) -> float:
        """Return the value inside the current cycle."""
        index, since_restart, length = self.cycle(step)
        peak = self.initial * self.peak_decay**index
        return self.final + (peak - self.final) * (1.0 + math.cos(math.pi * since_restart / length)) / 2.0


@dataclass(frozen=True)
class Polynomial(Anneal):
    """Polynomial decay: ``f(t) = final + (initial - final) * (1 - min(t, T) / T) ** power``.

    ``power = 1`` is linear decay (see :func:`linear`); torch's ``PolynomialLR`` is the case
    ``final = 0``. After ``T = total_steps`` the value stays at ``final``.
    """

    power: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("power", self.power)

    def shape(self, progress: float) -> float:
        """``(1 - progress) ** power``."""
        return (1.0 - progress) ** self.power


def linear(total_steps: int, initial: float = 1.0, final: float = 0.0) -> Polynomial:
    """Linear interpolation from ``initial`` to ``final`` over ``total_steps``: a degree-1 polynomial."""
    return Polynomial(total_steps, initial=initial, final=final, power=1.0)


@dataclass(frozen=True)
class OneMinusSqrt(Anneal):
    """The "1 - sqrt" cooldown: ``f(t) = final + (initial - final) * (1 - sqrt(min(t, T) / T))``.

    The decay shape Hägele et al. (2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed
    Training Durations", https://arxiv.org/abs/2405.18392) found best for warmup-stable-decay runs.
    """

    def shape(self, progress: float) -> float:
        """``1 - sqrt(progress)``."""
        return 1.0 - math.sqrt(progress)
