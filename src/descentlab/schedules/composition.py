"""Schedules built from schedules: warm-up in front of any schedule, sequences, warmup-stable-decay.

The composed schedule sees *local* steps: in ``Warmup("linear", 500, then=Cosine(10_000))`` the cosine
starts at its own step 0 when the warm-up ends (step 500) and reaches its end at step 10 500; this is the
convention of Hugging Face's ``get_cosine_schedule_with_warmup`` and torch's ``SequentialLR``.
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Literal

from descentlab.schedules.base import Schedule, check_finite, check_steps
from descentlab.schedules.functions import Constant, Cosine, OneMinusSqrt, linear

WarmupKind = Literal["linear", "exponential", "constant"]
DEFAULT_START_FACTORS: dict[str, float] = {
    "linear": 0.0,  # Hugging Face and Goyal et al. (2017) ramp from zero
    "exponential": 0.01,  # a geometric ramp cannot start at zero; two decades below the target
    "constant": 0.1,  # He et al. (2016) trained ResNet-110 at 0.1x the rate before switching
}


@dataclass(frozen=True)
class Warmup(Schedule):
    """Warm-up for ``steps`` steps, then ``then`` (shifted to start at its own step 0).

    With ``target = then(0)`` and ``s = start_factor``, for ``t < steps``:

    - ``"linear"``: ``target * (s + (1 - s) * t / steps)`` (default ``s = 0``),
    - ``"exponential"``: ``target * s ** (1 - t / steps)`` (default ``s = 0.01``, must be > 0),
    - ``"constant"``: ``target * s`` (default ``s = 0.1``),

    and ``then(t - steps)`` from ``t = steps`` on. With the default linear warm-up the value at step 0 is
    0, so the first optimizer step does nothing (Hugging Face's convention); pass ``start_factor`` to
    start higher. A metric reported during the warm-up is not passed on to ``then``.

    References:
        Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017,
        https://arxiv.org/abs/1706.02677 (gradual linear and constant warm-up).
    """

    kind: WarmupKind
    steps: int
    then: Schedule = field(default_factory=Constant)
    start_factor: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or self.kind not in DEFAULT_START_FACTORS:
            raise ValueError(f"kind must be one of {sorted(DEFAULT_START_FACTORS)}, got {self.kind!r}")
        check_steps("steps", self.steps, minimum=0)
        if not isinstance(self.then, Schedule):
            raise TypeError(f"then must be a Schedule, got {self.then!r}")
        if self.start_factor is None:
            object.__setattr__(self, "start_factor", DEFAULT_START_FACTORS[self.kind])
        check_finite("start_factor", self.start_factor)
        if self.start_factor < 0 or (self.kind == "exponential" and self.start_factor == 0):
            bound = "> 0" if self.kind == "exponential" else ">= 0"
            raise ValueError(
                f"start_factor must be {bound} for {self.kind} warm-up, got {self.start_factor!r}"
            )

    def value_at(self, step: int) -> float:
        """Return the warm-up value, or the wrapped schedule's value after the warm-up."""
        if step >= self.steps:
            return self.then(step - self.steps)
        target = self.then(0)
        progress = step / self.steps
        if self.kind == "linear":
            return target * (self.start_factor + (1.0 - self.start_factor) * progress)
        if self.kind == "exponential":
            return target * self.start_factor ** (1.0 - progress)
        return target * self.start_factor

    @property
    def uses_metric(self) -> bool:
        """Whether the wrapped schedule uses metrics."""
        return self.then.uses_metric

    def report(self, metric: float, step: int) -> None:
        """Pass the metric on to the wrapped schedule once the warm-up is over."""
        if step >= self.steps:
            self.then.report(metric, step - self.steps)

    def state_dict(self) -> dict[str, Any]:
        """Return the wrapped schedule's state."""
        return self.then.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the wrapped schedule's state."""
        self.then.load_state_dict(state)


@dataclass(frozen=True)
class Sequence(Schedule):
    """Schedules one after another: ``segments`` is a list of ``(steps, schedule)``.

    Each schedule runs for its ``steps`` on its own local step counter (starting at 0). The last
    segment's ``steps`` may be ``None`` (it runs forever); when it is a number, the last schedule keeps
    being evaluated past its end (``Cosine`` and ``Polynomial`` hold their final value there). Metrics are
    passed to the segment active at the reported step, so a :class:`~descentlab.schedules.performance.
    Plateau` can follow any fixed schedule.
    """

    segments: SequenceOf[tuple[int | None, Schedule]]

    def __post_init__(self) -> None:
        if isinstance(self.segments, (str, bytes)) or not isinstance(self.segments, SequenceOf):
            raise TypeError(f"segments must be a list of (steps, schedule) pairs, got {self.segments!r}")
        if not self.segments:
            raise ValueError(f"segments must hold at least one (steps, schedule) pair, got {self.segments!r}")
        for index, segment in enumerate(self.segments):
            if not isinstance(segment, (tuple, list)) or len(segment) != 2:
                raise TypeError(f"segments[{index}] must be a (steps, schedule) pair, got {segment!r}")
        segments = tuple((steps, schedule) for steps, schedule in self.segments)
        for index, (steps, schedule) in enumerate(segments):
            if not isinstance(schedule, Schedule):
                raise TypeError(f"segments[{index}][1] must be a Schedule, got {schedule!r}")
            if steps is None and index == len(segments) - 1:
                continue
            check_steps(f"segments[{index}][0] (steps)", steps)
        object.__setattr__(self, "segments", segments)

    def starts(self) -> tuple[int, ...]:
        """Return the global step at which each segment starts."""
        lengths = [steps for steps, _ in self.segments[:-1]]
        return (0, *accumulate(lengths))

    def locate(self, step: int) -> tuple[int, int]:
        """Return ``(segment index, local step)`` for a global ``step``."""
        starts = self.starts()
        index = len(starts) - 1
        while starts[index] > step:
            index -= 1
        return index, step - starts[index]

    def value_at(self, step: int) -> float:
        """Return the active segment's value at its local step."""
        index, local = self.locate(step)
        return self.segments[index][1](local)

    @property
    def uses_metric(self) -> bool:
        """Whether any segment uses metrics."""
        return any(schedule.uses_metric for _, schedule in self.segments)

    def report(self, metric: float, step: int) -> None:
        """Pass the metric to the segment active at ``step``."""
        index, local = self.locate(step)
        self.segments[index][1].report(metric, local)

    def state_dict(self) -> dict[str, Any]:
        """Return each segment's state, keyed by its position."""
        return {str(index): schedule.state_dict() for index, (_, schedule) in enumerate(self.segments)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore each segment's state."""
        expected = [str(index) for index in range(len(self.segments))]
        if sorted(state) != sorted(expected):
            raise ValueError(f"Sequence state needs keys {expected}, got {sorted(state)}")
        for index, (_, schedule) in enumerate(self.segments):
            schedule.load_state_dict(state[str(index)])


DecayShape = Literal["1-sqrt", "linear", "cosine"]


def wsd(
    total_steps: int,
    warmup_steps: int,
    decay_steps: int,
    peak: float = 1.0,
    final: float = 0.0,
    *,
    decay: DecayShape = "1-sqrt",
) -> Schedule:
    """Warmup-stable-decay: linear warm-up from 0 to ``peak``, hold ``peak``, decay to ``final``.

    The three phases take ``warmup_steps``, ``total_steps - warmup_steps - decay_steps`` and
    ``decay_steps``; the value is ``final`` at step ``total_steps`` and after. ``decay`` picks the
    cooldown shape: ``"1-sqrt"`` (Hägele et al. 2024, https://arxiv.org/abs/2405.18392), ``"linear"`` or
    ``"cosine"``. The schedule of Hu et al., "MiniCPM", 2024, https://arxiv.org/abs/2404.06395.
    """
    check_steps("total_steps", total_steps)
    check_steps("warmup_steps", warmup_steps, minimum=0)
    check_steps("decay_steps", decay_steps)
    stable_steps = total_steps - warmup_steps - decay_steps
    if stable_steps < 0:
        raise ValueError(
            f"warmup_steps + decay_steps must be <= total_steps, got {warmup_steps} + {decay_steps} > "
            f"{total_steps}"
        )
    shapes = {"1-sqrt": OneMinusSqrt, "linear": linear, "cosine": Cosine}
    if not isinstance(decay, str) or decay not in shapes:
        raise ValueError(f"decay must be one of {sorted(shapes)}, got {decay!r}")
    cooldown = shapes[decay](decay_steps, initial=peak, final=final)
    after_warmup = (
        cooldown if stable_steps == 0 else Sequence([(stable_steps, Constant(peak)), (None, cooldown)])
    )
    return Warmup("linear", warmup_steps, then=after_warmup)
