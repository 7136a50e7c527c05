"""Paths on the anisotropic bowl ``f(x, y) = x^2 / 20 + y^2`` from ``(-7, 2)``.

``optimizers-bowl`` is Saito, *Deep Learning from Scratch* (2016), fig. 6-8: 30 updates of SGD (lr 0.95),
Momentum (lr 0.1, momentum 0.9), AdaGrad (lr 1.5) and Adam (lr 0.3), one panel each. The book's
Momentum is ``v <- 0.9 v - lr g; x <- x + v``, which is torch's ``SGD(momentum=0.9)`` exactly (its buffer
is ``-v / lr``), so the rate stays the book's 0.1; the book's AdaGrad adds 1e-7 to ``sqrt(h)``, which is
torch's ``eps``. The book's Adam puts its 1e-7 beside the uncorrected ``sqrt(v)``; torch's beside the
corrected one, a difference far below what the figure can show.

``momentum-nesterov`` follows Prince, *Understanding Deep Learning* (2023), sec. 6.3: gradient descent,
momentum (eq. 6.11) and Nesterov momentum (eq. 6.12) at one learning rate, one panel per momentum
coefficient.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from descentlab.figures.base import FigureDefinition, Runs
from descentlab.figures.panels import colors_for, panel_grid, path_panel
from descentlab.lab.spec import RunSpec
from descentlab.problems.registry import get_problem

SAITO_STEPS = 30
"""Updates per path in the book's ``optimizer_compare_naive.py``."""

SAITO_OPTIMIZERS = {
    "SGD (lr 0.95)": ("sgd", {"lr": 0.95}),
    "Momentum (lr 0.1, momentum 0.9)": ("sgd", {"lr": 0.1, "momentum": 0.9}),
    "AdaGrad (lr 1.5)": ("adagrad", {"lr": 1.5, "eps": 1e-7}),
    "Adam (lr 0.3)": ("adam", {"lr": 0.3}),
}
"""The book's four optimizers at its own rates, as descentlab runs them (module docstring)."""


def optimizers_bowl_runs() -> dict[str, RunSpec]:
    """The four textbook runs: 30 steps each from the textbook start (seed 0)."""
    return {
        label: RunSpec.create("bowl", optimizer, hyperparameters, steps=SAITO_STEPS)
        for label, (optimizer, hyperparameters) in SAITO_OPTIMIZERS.items()
    }


def draw_optimizers_bowl(runs: Runs) -> Figure:
    """One panel per optimizer, its path over the bowl's contours."""
    problem = get_problem("bowl")
    colors = colors_for(runs)
    figure, cells = panel_grid(len(runs), columns=2)
    for axes, (label, run) in zip(cells, runs.items()):
        path_panel(axes, problem, [(label, run)], label, colors)
    figure.suptitle(f"{SAITO_STEPS} updates on f(x, y) = x²/20 + y² from (−7, 2) (Saito, fig. 6-8)")
    return figure


NESTEROV_LR = 0.5
NESTEROV_STEPS = 40
MOMENTA = (0.5, 0.8, 0.95)
"""Momentum coefficients of the panels: mild, common, and heavy enough to overshoot."""


def momentum_nesterov_runs() -> dict[str, RunSpec]:
    """Gradient descent once, then momentum and Nesterov at each coefficient, all at one rate."""
    runs = {"gradient descent": RunSpec.create("bowl", "sgd", {"lr": NESTEROV_LR}, steps=NESTEROV_STEPS)}
    for beta in MOMENTA:
        for name in ("momentum", "nesterov"):
            hyperparameters = {"lr": NESTEROV_LR, "momentum": beta}
            runs[f"{name} β={beta:g}"] = RunSpec.create("bowl", name, hyperparameters, steps=NESTEROV_STEPS)
    return runs


def draw_momentum_nesterov(runs: Runs) -> Figure:
    """One panel per momentum coefficient: gradient descent, momentum and Nesterov over the contours."""
    problem = get_problem("bowl")
    colors = {
        label: color for label, color in zip(runs, ("#6b7280",) + ("#1f77b4", "#d62728") * len(MOMENTA))
    }
    figure, cells = panel_grid(len(MOMENTA), columns=len(MOMENTA))
    for axes, beta in zip(cells, MOMENTA):
        labels = ("gradient descent", f"momentum β={beta:g}", f"nesterov β={beta:g}")
        path_panel(axes, problem, [(label, runs[label]) for label in labels], f"β = {beta:g}", colors)
        axes.legend(loc="lower right", fontsize=7, framealpha=0.85)
    figure.suptitle(
        f"gradient descent, momentum (UDL eq. 6.11) and Nesterov (eq. 6.12), lr {NESTEROV_LR:g}, "
        f"{NESTEROV_STEPS} steps"
    )
    return figure


FIGURES = (
    FigureDefinition(
        "optimizers-bowl",
        "SGD, Momentum, AdaGrad, Adam on x²/20 + y² at the textbook's rates, one panel each",
        "Saito, Deep Learning from Scratch (2016), fig. 6-8",
        optimizers_bowl_runs,
        draw_optimizers_bowl,
    ),
    FigureDefinition(
        "momentum-nesterov",
        "gradient descent, momentum and Nesterov paths on the bowl, one panel per momentum coefficient",
        "Prince, Understanding Deep Learning (2023), sec. 6.3",
        momentum_nesterov_runs,
        draw_momentum_nesterov,
    ),
)
