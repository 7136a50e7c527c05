"""Plain gradient steps, normalized gradients and Adam on the ravine ``f(x, y) = x^2 / 200 + y^2``, after
Prince, *Understanding Deep Learning* (2023), sec. 6.4, fig. 6.9.

The ravine's Hessian is ``diag(0.01, 2)``: curvature 200 times larger along y. Gradient descent is stable
only for ``lr < 2 / 2 = 1``, where x shrinks by the factor ``1 - lr / 100 > 0.99`` a step, so within
the budget no stable rate gets near the minimum along x (the figure runs lr 0.95, 95 % of the limit).
Normalized gradient descent (UDL eqs. 6.13-6.14, :class:`~descentlab.optim.NormalizedGD`) moves every
coordinate by ``lr`` towards the minimum whatever its curvature, and then oscillates around it with
amplitude ``lr`` (the book's fig. 6.9c); Adam adds momentum and bias-corrected averages and settles
closer (fig. 6.9d). All three start at ``(-7, 2)`` (the ravine's start, as the bowl's) and take the
same number of steps; the book's own surface has a curvature ratio of only 16, hence the ravine.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from descentlab.figures.base import FigureDefinition, Runs
from descentlab.figures.panels import colors_for, panel_grid, path_panel
from descentlab.lab.spec import RunSpec
from descentlab.problems.functions2d import RAVINE_CURVATURES
from descentlab.problems.registry import get_problem

PROBLEM = "ravine"
STEPS = 60
GD_LR = 0.95
"""95 % of the stability limit ``2 / max curvature = 1``: the best plain descent can do along x."""
STEP_LR = 0.3
"""The normalized step and Adam's rate: (-7, 2) is no multiple of 0.3 away, so no step lands on 0."""

GD = f"gradient descent (lr {GD_LR:g})"
NORMALIZED = f"normalized gradients (lr {STEP_LR:g})"
ADAM = f"Adam (lr {STEP_LR:g})"
DISTANCE_TITLE = "distance to the minimum"
DISTANCE_FLOOR = 0.01
"""Bottom of the distance axis: a tenth of the closest any run gets, leaving room for the legend."""


def adam_vs_normalized_runs() -> dict[str, RunSpec]:
    """The three optimizers from the ravine's start, the same number of steps each (seed 0)."""
    return {
        GD: RunSpec.create(PROBLEM, "sgd", {"lr": GD_LR}, steps=STEPS),
        NORMALIZED: RunSpec.create(PROBLEM, "normalizedgd", {"lr": STEP_LR}, steps=STEPS),
        ADAM: RunSpec.create(PROBLEM, "adam", {"lr": STEP_LR}, steps=STEPS),
    }


def gradient_descent_distance(lr: float, steps: np.ndarray, start: tuple[float, float]) -> np.ndarray:
    """Descent's distance to the minimum in closed form.

    On ``x^T diag(h) x / 2`` coordinate i after t steps is ``(1 - lr h_i)^t`` times its start.
    """
    factors = 1.0 - lr * np.array(RAVINE_CURVATURES)
    return np.linalg.norm(np.array(start) * factors ** steps[:, None], axis=1)


def draw_distances(axes: Axes, runs: Runs, colors: dict[str, str], start: tuple[float, float]) -> None:
    """Each run's distance to the minimum over steps, with descent's closed form and its best case."""
    for label, run in runs.items():
        points = np.array(run.points(), dtype=float)
        axes.plot(np.arange(len(points)), np.linalg.norm(points, axis=1), color=colors[label], label=label)
    steps = np.arange(STEPS + 1)
    axes.plot(steps, gradient_descent_distance(GD_LR, steps, start), "--", color="black", linewidth=0.9,
              label=f"descent's closed form at lr {GD_LR:g}")  # fmt: skip
    best = abs(start[0]) * (1.0 - 2.0 * RAVINE_CURVATURES[0] / RAVINE_CURVATURES[1]) ** steps
    axes.plot(steps, best, ":", color="#6b7280", linewidth=1.2,
              label="bound for descent at any stable rate (lr < 1)")  # fmt: skip
    axes.set_yscale("log")
    axes.set_ylim(bottom=DISTANCE_FLOOR)
    axes.set_xlabel("step")
    axes.set_ylabel("distance to the minimum (0, 0)")
    axes.set_title(DISTANCE_TITLE, fontsize=10)
    axes.legend(fontsize=7, loc="lower left")


def draw_adam_vs_normalized(runs: Runs) -> Figure:
    """One panel per optimizer, its path over the ravine's contours, and the distances over steps."""
    problem = get_problem(PROBLEM)
    colors = colors_for(runs)
    figure, cells = panel_grid(len(runs) + 1, columns=2)
    for axes, (label, run) in zip(cells, runs.items()):
        path_panel(axes, problem, [(label, run)], label, colors)
    draw_distances(cells[-1], runs, colors, problem.start)
    low, high = RAVINE_CURVATURES
    figure.suptitle(
        f"{STEPS} steps on f(x, y) = x²/200 + y² from (−7, 2) (UDL fig. 6.9)\n"
        f"curvature {low:g} along x, {high:g} along y: a ratio of {high / low:g}"
    )
    return figure


FIGURES = (
    FigureDefinition(
        "adam-vs-normalized",
        "gradient descent vs normalized gradients vs Adam on a ravine whose curvatures differ 200-fold",
        "Prince, Understanding Deep Learning (2023), sec. 6.4, fig. 6.9",
        adam_vs_normalized_runs,
        draw_adam_vs_normalized,
    ),
)
