"""Small multiples of 2-D paths over a problem's loss contours, shared by the path figures."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from descentlab.figures.base import StoredRun
from descentlab.lab.report.colors import configuration_colors
from descentlab.lab.report.plots import draw_contours, draw_path
from descentlab.problems.base import Problem

PANEL_SIZE = (4.2, 3.4)
"""Inches per panel: wide enough for the tick labels of a contour plot, small enough for four a row."""


def panel_grid(count: int, columns: int, size: tuple[float, float] = PANEL_SIZE) -> tuple[Figure, list[Axes]]:
    """A figure of ``count`` panels in rows of ``columns``; unused cells are hidden."""
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(size[0] * columns, size[1] * rows + 0.5), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    cells = [axes for row in grid for axes in row]
    for axes in cells[count:]:
        axes.set_visible(False)
    return figure, cells[:count]


def draw_start_and_minima(axes: Axes, problem: Problem, start: tuple[float, float] | None = None) -> None:
    """The start as a black square and the known minima as stars (the global one larger, if several)."""
    start = start if start is not None else problem.start
    if start is not None:
        axes.plot(*start, marker="s", color="black", markersize=6, linestyle="none", label="start")
    if problem.minima:
        minima = np.array(problem.minima)
        axes.plot(
            *minima[0], marker="*", color="#facc15", markeredgecolor="black", markersize=15,
            linestyle="none", label="global minimum" if len(minima) > 1 else "minimum",
        )  # fmt: skip
        if len(minima) > 1:
            axes.plot(
                minima[1:, 0], minima[1:, 1], marker="*", color="white", markeredgecolor="black",
                markersize=10, linestyle="none", label="local minima",
            )  # fmt: skip


def path_panel(
    axes: Axes, problem: Problem, paths: Sequence[tuple[str, StoredRun]], title: str, colors: dict[str, str]
) -> None:
    """One panel: contours, each run's path (cut visibly where it leaves the window), start, minima."""
    draw_contours(axes, problem.function, problem.bounds)
    for label, run in paths:
        points = np.array(run.points(), dtype=float)
        if len(points):
            draw_path(axes, points, problem.bounds, colors[label], label)
    draw_start_and_minima(axes, problem)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("x" if problem.kind == "function2d" else "φ0")
    axes.set_ylabel("y" if problem.kind == "function2d" else "φ1")


def colors_for(runs: dict[str, StoredRun]) -> dict[str, str]:
    """The report's colour of each run's optimizer, so a figure and the report agree."""
    return configuration_colors([(label, run.spec.optimizer) for label, run in runs.items()])
