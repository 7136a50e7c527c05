"""Draw schedules over a range of steps (matplotlib, no pyplot, so it is safe on headless machines)."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping

from matplotlib.figure import Figure

from descentlab.atomic import save_figure
from descentlab.schedules.base import Schedule, check_steps


def plot(
    schedules: Schedule | Iterable[Schedule] | Mapping[str, Schedule],
    steps: int | Iterable[int],
    *,
    title: str | None = None,
    ylabel: str = "value",
    log_y: bool = False,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Plot one or more schedules against the step and return the ``Figure``.

    Args:
        schedules: one schedule, a list (labelled by their ``repr``), or ``{label: schedule}``.
        steps: ``n`` for steps ``0 .. n-1``, or any iterable of steps (e.g. ``range(0, 10_000, 10)``).
        title: figure title.
        ylabel: y-axis label, e.g. ``"learning-rate multiplier"``.
        log_y: use a logarithmic y axis (for exponential and power schedules); needs positive values.
        path: when given, the figure is also saved there (format from the suffix, written atomically).

    Metric-driven schedules (:class:`~descentlab.schedules.performance.Plateau`) receive no metrics
    here, so they are drawn at their current value; they are evaluated on copies, never changed.
    """
    if isinstance(schedules, Schedule):
        labelled = {repr(schedules): schedules}
    elif isinstance(schedules, Mapping):
        labelled = dict(schedules)
    else:
        labelled = {repr(schedule): schedule for schedule in schedules}
    if not labelled:
        raise ValueError("plot needs at least one schedule, got none")
    for label, schedule in labelled.items():
        if not isinstance(schedule, Schedule):
            raise TypeError(
                f"schedule {label!r} must be a descentlab Schedule, got {type(schedule).__name__}"
            )
    if isinstance(steps, int):
        check_steps("steps", steps)
        steps = range(steps)
    step_list = list(steps)
    if not step_list:
        raise ValueError("steps must contain at least one step, got an empty range")

    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.add_subplot()
    for label, schedule in labelled.items():
        own = copy.deepcopy(schedule)
        axes.plot(step_list, [own(step) for step in step_list], label=_shorten(label))
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    if log_y:
        axes.set_yscale("log")
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    if path is not None:
        save_figure(figure, path, parents=True)
    return figure


def _shorten(label: str, limit: int = 80) -> str:
    return label if len(label) <= limit else label[: limit - 3] + "..."
