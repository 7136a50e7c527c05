"""The 1cycle policy (Smith 2018): the value goes up then down once, optionally with an annihilation phase.

References:
    Smith, "A disciplined approach to neural network hyper-parameters: Part 1 -- learning rate, batch
    size, momentum, and weight decay", 2018, https://arxiv.org/abs/1803.09820.
    Smith & Topin, "Super-Convergence", 2017, https://arxiv.org/abs/1708.07120.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

from descentlab.schedules.base import Schedule, check_finite, check_positive, check_steps

Anneal = Literal["cos", "linear"]


@dataclass(frozen=True)
class OneCycle(Schedule):
    """One cycle through ``start -> peak -> end`` over ``total_steps`` steps.

    Phase boundaries follow torch's ``OneCycleLR`` exactly so the two agree to rounding:
    with ``T = total_steps`` and ``p = pct_start``,

    - two phases: ``start -> peak`` on steps ``[0, pT - 1]``, ``peak -> end`` on ``[pT - 1, T - 1]``;
    - three phases (Smith's original policy, with the final "annihilation"): ``start -> peak`` on
      ``[0, pT - 1]``, ``peak -> start`` on ``[pT - 1, 2pT - 2]``, ``start -> end`` on ``[2pT - 2, T - 1]``.

    Inside a phase from step ``a`` to ``b`` with ``x = (t - a) / (b - a)``, ``anneal="cos"`` gives
    ``to + (from - to) * (1 + cos(pi x)) / 2`` and ``anneal="linear"`` gives ``from + (to - from) x``.
    From step ``T - 1`` on, the value stays at ``end`` (torch raises after ``T`` steps instead).

    For the learning rate use :func:`one_cycle`; for momentum or Adam's ``beta1``, cycled inversely,
    use :func:`one_cycle_momentum`; apply both with one
    :class:`~descentlab.schedules.scheduler.HyperparameterScheduler`.

    Differences from torch's ``OneCycleLR`` (values agree to about 1e-12 relative, see the tests):

    - past step ``T - 1`` the value stays at ``end``; torch raises once stepped beyond ``T`` steps;
    - applied relatively (the default for ``lr``), each group's own learning rate plays the role of
      ``max_lr`` and ``initial_lr`` stays that value; torch rewrites ``initial_lr`` to
      ``max_lr / div_factor`` and adds ``max_lr``/``min_lr``/``max_momentum``/``base_momentum`` entries to
      every param group, which we do not.
    """

    total_steps: int
    start: float
    peak: float
    end: float
    pct_start: float = 0.3
    anneal: Anneal = "cos"
    three_phase: bool = False

    def __post_init__(self) -> None:
        check_steps("total_steps", self.total_steps, minimum=2)
        for name in ("start", "peak", "end"):
            check_finite(name, getattr(self, name))
        check_positive("pct_start", self.pct_start)
        if self.anneal not in ("cos", "linear"):
            raise ValueError(f"anneal must be 'cos' or 'linear', got {self.anneal!r}")
        boundaries = self.phase_ends()
        if boundaries[0] <= 0 or any(b <= a for a, b in itertools.pairwise(boundaries)):
            raise ValueError(
                f"pct_start={self.pct_start!r} with total_steps={self.total_steps} leaves an empty phase "
                f"(phase end steps {boundaries}); choose pct_start so that every phase has positive length"
            )

    def phase_ends(self) -> tuple[float, ...]:
        """Return the (fractional) step at which each phase ends, as torch computes them."""
        rise_end = self.pct_start * self.total_steps - 1
        if self.three_phase:
            return rise_end, 2 * self.pct_start * self.total_steps - 2, self.total_steps - 1
        return rise_end, self.total_steps - 1

    def phase_values(self) -> tuple[tuple[float, float], ...]:
        """Return ``(from, to)`` for each phase."""
        if self.three_phase:
            return (self.start, self.peak), (self.peak, self.start), (self.start, self.end)
        return (self.start, self.peak), (self.peak, self.end)

    def value_at(self, step: int) -> float:
        """Return the annealed value inside the phase containing ``step``."""
        if step >= self.total_steps - 1:
            return float(self.end)
        phase_start = 0.0
        for phase_end, (begin, finish) in zip(self.phase_ends(), self.phase_values()):
            if step <= phase_end:
                fraction = (step - phase_start) / (phase_end - phase_start)
                if self.anneal == "cos":
                    return finish + (begin - finish) * (1.0 + math.cos(math.pi * fraction)) / 2.0
                return begin + (finish - begin) * fraction
            phase_start = phase_end
        raise AssertionError("unreachable: the last phase ends at total_steps - 1")


def one_cycle(
    total_steps: int,
    peak: float = 1.0,
    *,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal: Anneal = "cos",
    three_phase: bool = False,
) -> OneCycle:
    """The 1cycle learning rate with torch's ``OneCycleLR`` parametrisation.

    Starts at ``peak / div_factor``, rises to ``peak``, and ends at
    ``peak / (div_factor * final_div_factor)``. With the default ``peak = 1`` it is a multiplier of the
    param group's initial learning rate, which then plays the role of torch's ``max_lr``.
    """
    check_finite("peak", peak)  # here, so that a bad peak is not reported as the start derived from it
    check_positive("div_factor", div_factor)
    check_positive("final_div_factor", final_div_factor)
    start = peak / div_factor
    return OneCycle(total_steps, start, peak, start / final_div_factor, pct_start, anneal, three_phase)


def one_cycle_momentum(
    total_steps: int,
    low: float = 0.85,
    high: float = 0.95,
    *,
    pct_start: float = 0.3,
    anneal: Anneal = "cos",
    three_phase: bool = False,
) -> OneCycle:
    """Momentum (or ``beta1``) cycled inversely to :func:`one_cycle`: ``high -> low -> high``.

    Use it with the same ``total_steps``, ``pct_start``, ``anneal`` and ``three_phase`` as the learning
    rate and apply it as an absolute value (see :class:`~descentlab.schedules.scheduler.
    HyperparameterScheduler`); torch calls ``low``/``high`` ``base_momentum``/``max_momentum``.
    """
    check_finite("low", low)  # here, so that the error names low/high, not OneCycle's peak/start
    check_finite("high", high)
    return OneCycle(total_steps, high, low, high, pct_start, anneal, three_phase)
