"""A run's schedule spec -> a :mod:`descentlab.schedules` scheduler, stepped once per optimizer step.

A spec is ``{"name": NAME, **options}`` plus two composable keys: ``warmup`` (linear warm-up over that
many steps, or that fraction of the budget when below 1, then the named schedule over the remaining
steps) and ``momentum`` (``"onecycle"``: momentum, or beta1, cycled 0.95 -> 0.85 -> 0.95 as in 1cycle).
Every learning-rate schedule is a multiplier of the optimizer's ``lr`` (so a sweep over ``lr`` stays a
sweep over the peak rate). Names, their options and defaults (``T`` is the number of steps the schedule
covers):

=============  ==================================================================================
constant       1
step           ``gamma`` (0.1) every ``every`` steps (T // 3)
power          ``1 / (1 + t / scale_steps) ** exponent`` (scale_steps T / 10, exponent 1)
exponential    ``factor ** (t / scale_steps)`` (factor 0.1, scale_steps T / 2: 100x lower at the end)
piecewise      ``values`` (1, 0.1, 0.01) switched at ``boundaries`` (T / 2, 3T / 4)
cosine         cosine from 1 to ``final`` (0) over T
restarts       cosine with warm restarts every ``period`` (T / 4) steps, ``period_factor`` (1)
polynomial     ``(1 - t / T) ** power`` to ``final`` (power 2, final 0)
linear         linear decay to ``final`` (0)
onecycle       1cycle (torch's OneCycleLR shape; ``pct_start`` 0.3, ``div_factor`` 25,
               ``final_div_factor`` 1e4); the lr is the peak
wsd            warm-up, stable, decay (``warmup_fraction`` 0.05, ``decay_fraction`` 0.2, ``decay`` 1-sqrt)
plateau        reduce by ``factor`` (0.1) after ``patience`` (3) evaluations without a better
               validation metric
=============  ==================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.optim import Optimizer

from descentlab import schedules as lib
from descentlab.lab.fields import SCHEDULE_NAMES, SettingError

Builder = Callable[[dict[str, Any], int], lib.Schedule]


def _take(options: dict[str, Any], key: str, default: Any) -> Any:
    return options.pop(key, default)


_BUILDERS: dict[str, Builder] = {
    "constant": lambda o, T: lib.Constant(),
    "step": lambda o, T: lib.PiecewiseConstant(
        *_step_boundaries(T, int(_take(o, "every", max(1, T // 3))), float(_take(o, "gamma", 0.1)))
    ),
    "power": lambda o, T: lib.Power(
        float(_take(o, "scale_steps", max(1.0, T / 10))), float(_take(o, "exponent", 1.0))
    ),
    "exponential": lambda o, T: lib.Exponential(
        float(_take(o, "scale_steps", max(1.0, T / 2))), float(_take(o, "factor", 0.1))
    ),
    "piecewise": lambda o, T: lib.PiecewiseConstant(
        tuple(int(b) for b in _take(o, "boundaries", (max(1, T // 2), max(2, 3 * T // 4)))),
        tuple(float(v) for v in _take(o, "values", (1.0, 0.1, 0.01))),
    ),
    "cosine": lambda o, T: lib.Cosine(T, final=float(_take(o, "final", 0.0))),
    "restarts": lambda o, T: lib.CosineRestarts(
        int(_take(o, "period", max(1, T // 4))),
        final=float(_take(o, "final", 0.0)),
        period_factor=int(_take(o, "period_factor", 1)),
    ),
    "polynomial": lambda o, T: lib.Polynomial(
        T, final=float(_take(o, "final", 0.0)), power=float(_take(o, "power", 2.0))
    ),
    "linear": lambda o, T: lib.linear(T, final=float(_take(o, "final", 0.0))),
    "onecycle": lambda o, T: lib.one_cycle(
        T,
        pct_start=float(_take(o, "pct_start", 0.3)),
        div_factor=float(_take(o, "div_factor", 25.0)),
        final_div_factor=float(_take(o, "final_div_factor", 1e4)),
    ),
    "wsd": lambda o, T: lib.wsd(
        T,
        warmup_steps=round(T * float(_take(o, "warmup_fraction", 0.05))),
        decay_steps=max(1, round(T * float(_take(o, "decay_fraction", 0.2)))),
        decay=str(_take(o, "decay", "1-sqrt")),
    ),
    "plateau": lambda o, T: lib.Plateau(
        mode=str(_take(o, "mode", "min")),
        factor=float(_take(o, "factor", 0.1)),
        patience=int(_take(o, "patience", 3)),
    ),
}
assert set(_BUILDERS) == set(SCHEDULE_NAMES), "every schedule name the settings accept has a builder"


def _step_boundaries(total: int, every: int, gamma: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    boundaries = tuple(range(every, total, every)) or (total,)
    return boundaries, tuple(gamma**index for index in range(len(boundaries) + 1))


def _warmup_steps(value: Any, total: int) -> int:
    steps = round(value * total) if isinstance(value, float) and value < 1 else int(value)
    if not 0 <= steps < total:
        raise SettingError(f"warmup must be shorter than the run ({total} steps), got {value}")
    return steps


def learning_rate_schedule(
    spec: dict[str, Any], total_steps: int, higher_is_better: bool = False
) -> lib.Schedule:
    """The learning-rate multiplier schedule of ``spec`` over ``total_steps`` steps.

    ``higher_is_better`` sets the plateau schedule's default mode from the problem's metric.

    Raises:
        SettingError: an unknown name or option, or a bad value, naming it.
    """
    options = {key: value for key, value in spec.items() if key not in ("name", "warmup", "momentum")}
    name = spec.get("name", "constant")
    if name not in _BUILDERS:
        raise SettingError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULE_NAMES)}")
    warmup = _warmup_steps(spec["warmup"], total_steps) if spec.get("warmup") else 0
    if name == "plateau":
        options.setdefault("mode", "max" if higher_is_better else "min")
    try:
        schedule = _BUILDERS[name](options, total_steps - warmup)
    except (TypeError, ValueError) as error:
        raise SettingError(f"schedule {name!r}: {error}") from None
    if options:
        raise SettingError(
            f"unknown option(s) for schedule {name!r}: {', '.join(sorted(options))} "
            "(see `descentlab.lab.schedules` for each schedule's options)"
        )
    return lib.Warmup("linear", warmup, then=schedule) if warmup else schedule


def build_scheduler(
    spec: dict[str, Any] | None, optimizer: Optimizer, total_steps: int, higher_is_better: bool = False
) -> lib.HyperparameterScheduler | None:
    """The scheduler for ``spec`` (``None`` for a constant rate without a momentum schedule)."""
    if not spec:
        return None
    schedules: dict[str, lib.Schedule] = {}
    if spec.get("name", "constant") != "constant" or spec.get("warmup"):
        schedules["lr"] = learning_rate_schedule(spec, total_steps, higher_is_better)
    elif set(spec) - {"name", "warmup", "momentum"}:
        learning_rate_schedule(spec, total_steps)  # reports the unknown options
    momentum = spec.get("momentum", "constant")
    if momentum == "onecycle":
        try:
            key = lib.momentum_key(optimizer)
        except ValueError as error:
            raise SettingError(f"momentum_schedule=onecycle: {error}") from None
        pct_start = float(spec.get("pct_start", 0.3))
        schedules[key] = lib.one_cycle_momentum(total_steps, pct_start=pct_start)
    elif momentum != "constant":
        raise SettingError(f"momentum_schedule must be constant or onecycle, got {momentum!r}")
    if not schedules:
        return None
    return lib.HyperparameterScheduler(optimizer, schedules)


def uses_metric(scheduler: lib.HyperparameterScheduler | None) -> bool:
    """Whether ``scheduler`` listens to the validation metric (performance scheduling)."""
    return scheduler is not None and any(s.uses_metric for s in scheduler.schedules.values())
