"""Overfitting and two cures: training vs validation accuracy without regularisation, with weight decay
and with dropout.

The set-up of Saito, *Deep Learning from Scratch* (2016), sec. 6.4 (figs. 6-20, 6-21 and 6-23: a network
big enough to memorise its training set, then the same network with weight decay and with dropout), on
a data set that ships with descentlab: MNIST-1D (Greydanus & Kobak 2024), whose 3200 training signals
an MLP 40-100-100-10 learns by heart while its validation accuracy stays near 0.6, the data set
Prince, *Understanding Deep Learning* (2023), ch. 8-9 uses for the same lesson. All three runs train
Adam (lr 1e-3) for 3000 steps of 100 signals (94 epochs) from the same initial weights and batch order
(seed 0). Weight decay is torch's ``Adam(weight_decay=...)``, the L2 penalty of the books (its gradient
``λ w`` added to the loss gradient), on weights only: the lab leaves biases out, as Saito's
``MultiLayerNet`` does. Dropout is ``nn.Dropout`` after each hidden activation, which scales the kept
units by ``1 / (1 - p)`` during training where Saito's ``Dropout`` scales by ``1 - p`` at test time, the
same network in expectation.

Training accuracy is measured on the lab's fixed subset of 1000 training signals, with dropout off, at
every fifth validation evaluation; both are the step records' ``train_metrics`` and ``metrics``.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from descentlab.figures.base import FigureDefinition, Runs, StoredRun
from descentlab.figures.panels import panel_grid
from descentlab.lab.spec import RunSpec

PROBLEM = "mnist1d-mlp"
LR = 1e-3
STEPS = 3000
EVALUATIONS = 150
"""Validation every 20 steps, so the training subset (every fifth evaluation) every 100 steps."""

WEIGHT_DECAY = 1e-2
DROPOUT = 0.5
REGIMES = {
    "no regularisation": ({}, {}),
    f"weight decay {WEIGHT_DECAY:g}": ({"weight_decay": WEIGHT_DECAY}, {}),
    f"dropout {DROPOUT:g}": ({}, {"dropout": DROPOUT}),
}
"""Panel title -> (extra Adam hyperparameters, model options)."""

TRAIN_COLOR, VALIDATION_COLOR = "#2563eb", "#dc2626"


def overfitting_runs(steps: int = STEPS) -> dict[str, RunSpec]:
    """One Adam run per regime, same seed and budget (``steps`` smaller only in tests)."""
    record = {"evaluations": EVALUATIONS}
    return {
        title: RunSpec.create(PROBLEM, "adam", {"lr": LR, **extra}, steps=steps, model=model, record=record)
        for title, (extra, model) in REGIMES.items()
    }


def accuracy_curves(run: StoredRun) -> dict[str, list[tuple[int, float]]]:
    """``{"training": [(step, accuracy)], "validation": [...]}`` from the run's step records."""
    return {
        "training": [(r.step, r.train_metrics["accuracy"]) for r in run.records if r.train_metrics],
        "validation": [(r.step, r.metrics["accuracy"]) for r in run.records if r.metrics],
    }


def final_gap(run: StoredRun) -> float:
    """Training minus validation accuracy at the last evaluation (both are measured there)."""
    curves = accuracy_curves(run)
    return curves["training"][-1][1] - curves["validation"][-1][1]


def draw_overfitting(runs: Runs) -> Figure:
    """An accuracy panel per regime (training and validation), and the validation loss of all three."""
    figure, cells = panel_grid(len(runs) + 1, columns=len(runs) + 1, size=(3.9, 3.3))
    for axes, (title, run) in zip(cells, runs.items()):
        curves = accuracy_curves(run)
        axes.plot(*zip(*curves["training"]), "-o", markersize=2.5, color=TRAIN_COLOR, label="training")
        axes.plot(*zip(*curves["validation"]), color=VALIDATION_COLOR, linewidth=1.2, label="validation")
        axes.set_title(f"{title}: final gap {final_gap(run):.2f}", fontsize=10)
        axes.set_xlabel("step")
        axes.set_ylabel("accuracy")
        axes.set_ylim(0, 1.02)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right", fontsize=8)
    loss_axes = cells[-1]
    for (title, run), style in zip(runs.items(), ("-", "--", ":")):
        points = [(r.step, r.metrics["loss"]) for r in run.records if r.metrics]
        loss_axes.plot(*zip(*points), style, color="black", linewidth=1.2, label=title)
    unregularised = [(r.step, r.metrics["loss"]) for r in runs["no regularisation"].records if r.metrics]
    lowest = min(unregularised, key=lambda point: point[1])
    loss_axes.plot(*lowest, "v", color="#dc2626", label=f"lowest unregularised (step {lowest[0]})")
    loss_axes.set_title("validation loss", fontsize=10)
    loss_axes.set_xlabel("step")
    loss_axes.set_ylabel("cross-entropy")
    loss_axes.grid(alpha=0.3)
    loss_axes.legend(fontsize=8)
    steps = next(iter(runs.values())).spec.steps
    figure.suptitle(
        f"overfitting on {PROBLEM}: Adam lr {LR:g}, batch 100, {steps} steps; training accuracy on 1000 "
        "fixed training signals"
    )
    return figure


FIGURES = (
    FigureDefinition(
        "overfitting",
        "training vs validation accuracy without regularisation, with weight decay and with dropout",
        "Saito, Deep Learning from Scratch (2016), sec. 6.4, figs. 6-20, 6-21, 6-23",
        overfitting_runs,
        draw_overfitting,
    ),
)
