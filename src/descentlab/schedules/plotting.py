"""Draw schedules over a range of steps (matplotlib, no pyplot, so it is safe on headless machines)."""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from matplotlib.figure import Figure

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
        save_atomically(figure, Path(path))
    return figure


def _shorten(label: str, limit: int = 80) -> str:
    return label if len(label) <= limit else label[: limit - 3] + "..."


def save_atomically(figure: Figure, path: Path) -> None:
    """Save ``figure`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    if not path.suffix:
        raise ValueError(f"path needs a suffix that names the image format (.png, .svg, .pdf), got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    try:
        figure.savefig(temporary, format=path.suffix.lstrip(".").lower())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
