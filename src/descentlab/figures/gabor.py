"""The Gabor model's loss surface (Prince, *Understanding Deep Learning* (2023), fig. 6.4): every minimum
and saddle point in the window, the global minimum marked apart, and gradient-descent paths from
several starts ending in different minima.

The critical points come from :func:`~descentlab.analysis.find_critical_points_2d` (Newton's method on
the gradient from a grid of starts, labelled by the second-derivative test), computed when the figure
is drawn; the paths are lab runs of plain gradient descent (``model.start`` picks each start).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from descentlab.analysis import CriticalPoint, find_critical_points_2d
from descentlab.figures.base import FigureDefinition, Runs
from descentlab.lab.report.plots import draw_contours, draw_path
from descentlab.lab.spec import RunSpec
from descentlab.problems.registry import get_problem

LR = 0.06
STEPS = 500
STARTS = (
    (-1.5, 8.5),
    (-4.0, 14.0),
    (6.0, 19.5),
    (-6.0, 6.0),
    (4.0, 14.0),
    (5.0, 3.5),
    (3.0, 3.0),
    (0.0, 5.5),
)
"""The book's start first, then one start in the basin of each other minimum (found by trying)."""

STARTS_PER_AXIS = 20
"""Grid of Newton starts: 16 per axis already find all 8 minima and 20 saddles; 20 leaves a margin."""


def gabor_runs() -> dict[str, RunSpec]:
    """Gradient descent from each start."""
    return {
        f"from ({phi0:g}, {phi1:g})": RunSpec.create(
            "gabor", "sgd", {"lr": LR}, steps=STEPS, model={"start": (phi0, phi1)}
        )
        for phi0, phi1 in STARTS
    }


@functools.cache
def gabor_critical_points() -> tuple[tuple[CriticalPoint, ...], tuple[CriticalPoint, ...]]:
    """The minima (lowest loss first) and the saddle points of the Gabor loss in its window.

    Computed once per process (1.7 s on one core): the figures drawing the Gabor surface share them.
    """
    problem = get_problem("gabor")
    points = find_critical_points_2d(problem.function, problem.bounds, starts_per_axis=STARTS_PER_AXIS)
    minima = sorted((p for p in points if p.label == "minimum"), key=lambda p: p.value)
    return tuple(minima), tuple(p for p in points if p.label == "saddle")


def draw_critical_points(
    axes: Axes, minima: Sequence[CriticalPoint], saddles: Sequence[CriticalPoint]
) -> None:
    """Saddles as crosses, local minima as white stars and the global (first) one as a large gold star."""
    saddle_points = np.array([p.point for p in saddles])
    axes.plot(*saddle_points.T, "x", color="black", markersize=7, linestyle="none", label="saddle points")
    local = np.array([p.point for p in minima[1:]])
    axes.plot(*local.T, "*", color="white", markeredgecolor="black", markersize=12, linestyle="none",
              label="local minima")  # fmt: skip
    axes.plot(*minima[0].point, "*", color="#facc15", markeredgecolor="black", markersize=20,
              linestyle="none", label="global minimum")  # fmt: skip


def draw_gabor(runs: Runs) -> Figure:
    """Left: surface, critical points and paths; right: each path's loss, against the minima's values."""
    problem = get_problem("gabor")
    minima, saddles = gabor_critical_points()
    figure = Figure(figsize=(14.0, 5.6), layout="constrained")
    surface, losses = figure.subplots(1, 2)
    draw_contours(surface, problem.function, problem.bounds)
    colors = [f"C{index}" for index in range(len(runs))]
    for color, (label, run) in zip(colors, runs.items()):
        path = np.array(run.points(), dtype=float)
        draw_path(surface, path, problem.bounds, color, label)
        surface.plot(*path[0], "s", color=color, markersize=5)
        steps, values = run.series("loss")
        losses.plot(steps, values, color=color, label=label)
    draw_critical_points(surface, minima, saddles)
    surface.set_xlabel("φ0 (offset)")
    surface.set_ylabel("φ1 (frequency)")
    surface.set_title(f"loss surface: {len(minima)} minima, {len(saddles)} saddle points", fontsize=10)
    surface.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for index, minimum in enumerate(minima):
        losses.axhline(minimum.value, color="#9ca3af", linewidth=0.6, linestyle="-" if index else "--")
    losses.set_yscale("log")
    losses.set_xlabel("step")
    losses.set_ylabel("loss (sum of squares)")
    losses.set_title("loss of each path (grey: the minima's values; dashed: global)", fontsize=10)
    figure.suptitle(f"the Gabor model (UDL fig. 6.4): gradient descent, lr {LR:g}, {STEPS} steps per start")
    return figure


FIGURES = (
    FigureDefinition(
        "gabor-surface",
        "the Gabor loss surface with every minimum and saddle, and descent paths into different minima",
        "Prince, Understanding Deep Learning (2023), fig. 6.4",
        gabor_runs,
        draw_gabor,
    ),
)
