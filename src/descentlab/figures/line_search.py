"""One step of the bracketing (golden-section) line search, as in Prince, *Understanding Deep Learning*
(2023), sec. 6.1.2: the loss along the search direction, the bracket ``a < b < c < d`` at each
iteration, and the step chosen.

The run is one step of :class:`~descentlab.optim.LineSearchGD` on the book's linear regression
(notebook 6.1, from its start ``(0.6, -0.2)``), recorded with ``record=line_search``; the brackets and
trials are the optimizer's own record of that step, read back from the store. The loss along the
direction, ``h(alpha) = L(theta - alpha g)``, is evaluated from the problem's closed form.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from descentlab.figures.base import FigureDefinition, Runs
from descentlab.figures.panels import draw_start_and_minima
from descentlab.lab.report.plots import draw_contours, draw_path
from descentlab.lab.spec import RunSpec
from descentlab.problems.registry import get_problem

PROBLEM = "linear-regression"
FIRST_BRACKET = 0.1
"""The initial bracket ``[0, 0.1]`` (``lr`` of LineSearchGD) holds the minimiser (about 0.02) of the
first step, so the search starts sectioning at once."""

TOLERANCE = 1e-3
"""Stop when the bracket is shorter than this: ten golden-section reductions of the first bracket."""

LABEL = "golden-section line search"
BRACKET_MARKERS = {"a": "|", "b": "o", "c": "s", "d": "|"}


def line_search_runs() -> dict[str, RunSpec]:
    """One recorded step of the golden-section search."""
    hyperparameters = {"lr": FIRST_BRACKET, "method": "golden", "tolerance": TOLERANCE}
    spec = RunSpec.create(
        PROBLEM, "linesearchgd", hyperparameters, steps=1, record={"record": ["line_search"]}
    )
    return {LABEL: spec}


def loss_along_direction(start: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``h(alpha) = L(start - alpha g)`` with ``g = grad L(start)`` (problem closed form), and ``g``."""
    function = get_problem(PROBLEM).function
    point = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    function(point).backward()
    gradient = point.grad.numpy()
    trials = torch.tensor(start[None, :] - alphas[:, None] * gradient[None, :], dtype=torch.float64)
    with torch.no_grad():
        return function(trials).numpy(), gradient


def draw_line_search(runs: Runs) -> Figure:
    """Left: ``h(alpha)`` with the trials and the choice; middle: the brackets; right: the step taken."""
    run = runs[LABEL]
    (search,) = [i.value for i in run.instruments if i.kind == "line_search"]
    brackets = np.array(search["brackets"], dtype=float)
    chosen = float(search["chosen_step"])
    start = np.array(run.points()[0], dtype=float)
    alphas = np.linspace(0.0, brackets[0, 3], 400)
    values, _ = loss_along_direction(start, alphas)
    figure = Figure(figsize=(14.0, 4.2), layout="constrained")
    curve, rows, surface = figure.subplots(1, 3)

    curve.plot(alphas, values, color="#111827", linewidth=1.4, label="h(α) = L(θ − α g)")
    curve.plot(
        search["trial_steps"], search["trial_losses"], "o", color="#9ca3af", markersize=4, label="trials"
    )
    chosen_value, _ = loss_along_direction(start, np.array([chosen]))
    curve.plot([chosen], chosen_value, "*", color="#dc2626", markersize=14, label=f"chosen α = {chosen:.4g}")
    curve.set_xlabel("step length α along −g")
    curve.set_ylabel("loss h(α)")
    curve.set_title("loss along the search direction", fontsize=10)
    curve.legend(fontsize=8)

    for name, column in zip("abcd", range(4)):
        rows.plot(
            brackets[:, column], np.arange(len(brackets)), BRACKET_MARKERS[name], label=name, markersize=6
        )
    for iteration, (a, _, _, d) in enumerate(brackets):
        rows.plot([a, d], [iteration, iteration], color="#d1d5db", linewidth=1.0, zorder=0)
    rows.axvline(chosen, color="#dc2626", linewidth=0.9, linestyle="--", label="chosen α")
    rows.invert_yaxis()
    rows.set_xlabel("step length α")
    rows.set_ylabel("iteration")
    rows.set_title("bracket a < b < c < d at each iteration", fontsize=10)
    rows.legend(fontsize=8, loc="lower right")

    problem = get_problem(PROBLEM)
    draw_contours(surface, problem.function, problem.bounds)
    draw_path(surface, np.array(run.points(), dtype=float), problem.bounds, "#dc2626", "the step taken")
    draw_start_and_minima(surface, problem)
    surface.set_xlabel("φ0")
    surface.set_ylabel("φ1")
    surface.set_title("the step on the loss surface", fontsize=10)
    surface.legend(fontsize=8, loc="lower right")
    figure.suptitle(f"one step of the golden-section line search on {PROBLEM} (UDL sec. 6.1.2)")
    return figure


FIGURES = (
    FigureDefinition(
        "line-search",
        "one golden-section line-search step: loss along the direction, brackets a,b,c,d, the step chosen",
        "Prince, Understanding Deep Learning (2023), sec. 6.1.2",
        line_search_runs,
        draw_line_search,
    ),
)
