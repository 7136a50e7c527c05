"""Build a learning-rate scheduler from a spec dict such as ``{"name": "cosine"}``.

Kept in one small function so the lab can switch to :mod:`descentlab.schedules` in one place.
"""

from __future__ import annotations

from typing import Any

from torch.optim import Optimizer, lr_scheduler

SCHEDULE_NAMES = ("constant", "step", "exponential", "cosine", "onecycle")


def build_scheduler(
    spec: dict[str, Any] | None, optimizer: Optimizer, total_steps: int
) -> lr_scheduler.LRScheduler | None:
    """The scheduler for ``spec`` stepped once per optimizer step, or ``None`` for a constant rate.

    Args:
        spec: ``{"name": ..., **options}``; names and options:
            ``constant``; ``step`` (``step_size`` steps, ``gamma`` = 0.1);
            ``exponential`` (``gamma`` per step, default chosen so the rate falls 100x over the run);
            ``cosine`` (``min_lr`` = 0, annealed over ``total_steps``);
            ``onecycle`` (``max_lr`` = the optimizer's lr, ``pct_start`` = 0.3).
        optimizer: the optimizer whose ``lr`` is scheduled.
        total_steps: steps in the run.
    """
    if not spec or spec.get("name") in (None, "constant"):
        return None
    options = {key: value for key, value in spec.items() if key != "name"}
    name = spec["name"]
    base_lr = optimizer.param_groups[0]["lr"]
    builders = {
        "step": lambda: lr_scheduler.StepLR(
            optimizer,
            step_size=int(options.pop("step_size", max(1, total_steps // 3))),
            gamma=float(options.pop("gamma", 0.1)),
        ),
        "exponential": lambda: lr_scheduler.ExponentialLR(
            optimizer, gamma=float(options.pop("gamma", 0.01 ** (1.0 / max(1, total_steps))))
        ),
        "cosine": lambda: lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=total_steps, eta_min=float(options.pop("min_lr", 0.0))
        ),
        "onecycle": lambda: lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=float(options.pop("max_lr", base_lr)),
            total_steps=total_steps,
            pct_start=float(options.pop("pct_start", 0.3)),
        ),
    }
    if name not in builders:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULE_NAMES)}")
    scheduler = builders[name]()
    if options:
        raise ValueError(f"unknown options for schedule {name!r}: {', '.join(sorted(options))}")
    return scheduler
