"""Performance scheduling: reduce the value when a reported metric stops improving.

Unlike torch's ``ReduceLROnPlateau``, :class:`Plateau` is a schedule like any other, so it composes:
``Sequence([(1000, Warmup("linear", 1000)), (None, Plateau(patience=3))])`` warms up and then reduces on
plateau. Its configuration is frozen; its mutable part (current value, best metric, counters) lives in a
small state object that :meth:`Plateau.state_dict` saves as plain numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from descentlab.schedules.base import Schedule, check_finite, check_positive


@dataclass
class PlateauState:
    """The mutable part of a :class:`Plateau`: what it has learnt from the metrics so far."""

    value: float | None = None
    best: float | None = None
    bad_reports: int = 0
    cooldown_left: int = 0
    reductions: int = 0


@dataclass(frozen=True)
class Plateau(Schedule):
    """Reduce on plateau: multiply the value by ``factor`` when the metric has not improved for a while.

    Starts at ``initial``. Each :meth:`report` compares the metric with the best so far: with
    ``mode="min"`` and ``threshold_mode="rel"`` it is an improvement when ``metric < best * (1 -
    threshold)`` (``"abs"``: ``metric < best - threshold``; ``mode="max"`` mirrors both). After more than
    ``patience`` reports without improvement the value becomes ``max(value * factor, min_value)`` and the
    next ``cooldown`` reports are not counted. A NaN metric is never an improvement. The logic is that of
    torch's ``ReduceLROnPlateau``, so with the same settings both reduce at the same reports.

    The value does not depend on the step, only on the reports: ``plateau(step)`` is the current value.
    Applied relatively (the default for ``lr``), ``initial`` and ``min_value`` are multipliers of each
    group's initial learning rate: torch's ``min_lr`` corresponds to ``min_value * initial_lr``.
    """

    initial: float = 1.0
    mode: Literal["min", "max"] = "min"
    factor: float = 0.1
    patience: int = 10
    threshold: float = 1e-4
    threshold_mode: Literal["rel", "abs"] = "rel"
    cooldown: int = 0
    min_value: float = 0.0
    eps: float = 1e-8
    state: PlateauState = field(default_factory=PlateauState, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_finite("initial", self.initial)
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        check_positive("factor", self.factor)
        if self.factor >= 1:
            raise ValueError(f"factor must be < 1 to reduce the value, got {self.factor!r}")
        for name in ("patience", "cooldown"):
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {count!r}")
        check_finite("threshold", self.threshold)
        if self.threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {self.threshold!r}")
        if self.threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {self.threshold_mode!r}")
        check_finite("min_value", self.min_value)
        check_finite("eps", self.eps)
        if self.eps < 0:
            raise ValueError(f"eps must be >= 0, got {self.eps!r}")

    @property
    def uses_metric(self) -> bool:
        """Always True: the value follows the reported metric."""
        return True

    def value_at(self, step: int) -> float:
        """Return the current value (``initial`` until a reduction happens)."""
        return float(self.initial if self.state.value is None else self.state.value)

    def is_improvement(self, metric: float) -> bool:
        """Whether ``metric`` beats the best reported so far by more than the threshold."""
        best = self.state.best
        if best is None:
            best = math.inf if self.mode == "min" else -math.inf
        if self.threshold_mode == "rel":
            scale = 1.0 - self.threshold if self.mode == "min" else 1.0 + self.threshold
            bar = best * scale
        else:
            bar = best - self.threshold if self.mode == "min" else best + self.threshold
        return metric < bar if self.mode == "min" else metric > bar

    def report(self, metric: float, step: int) -> None:
        """Record one metric value and reduce the value if the plateau has lasted long enough."""
        metric = float(metric)
        state = self.state
        if self.is_improvement(metric):
            state.best = metric
            state.bad_reports = 0
        else:
            state.bad_reports += 1
        if state.cooldown_left > 0:
            state.cooldown_left -= 1
            state.bad_reports = 0
        if state.bad_reports > self.patience:
            current = self.value_at(step)
            reduced = max(current * self.factor, self.min_value)
            # Like torch: a reduction smaller than eps is not applied (it would only add rounding noise).
            if current - reduced > self.eps:
                state.value = reduced
                state.reductions += 1
            state.cooldown_left = self.cooldown
            state.bad_reports = 0

    def state_dict(self) -> dict[str, Any]:
        """Return the current value, best metric and counters."""
        return asdict(self.state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        expected = set(asdict(PlateauState()))
        if set(state) != expected:
            raise ValueError(f"Plateau state needs keys {sorted(expected)}, got {sorted(state)}")
        for key, value in state.items():
            setattr(self.state, key, value)
