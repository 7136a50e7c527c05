"""Activation histograms per layer of a deep MLP at initialisation, as in Saito, *Deep Learning from
Scratch* (2016), ch. 6.2 (figs. 6-10 to 6-14), with batch norm (ch. 6.3) and per-layer gradient norms.

The network is the book's: 1000 inputs ``x ~ N(0, I)`` in 100 dimensions through five hidden layers of
100 units (the lab's ``gaussian-deep-mlp``). Each configuration is one lab run of a single full-batch
SGD step whose instruments watch that step's forward and backward pass, i.e. the network as
initialised (the update comes after the measurements): ``histograms`` (each activation layer's
100 000 outputs), ``activations`` (their std and the fraction exactly zero), ``preactivations`` (the
std of what enters each activation) and ``layer_grad_norms`` (the weight gradients of the mean
cross-entropy over the 1000 inputs).

What the rows show: sigmoid with ``N(0, 1)`` weights piles the activations at 0 and 1 (saturation,
vanishing gradients); ``N(0, 0.01^2)`` collapses them onto 0.5 (every unit says the same); Xavier
(``std = 1/sqrt(100)``) keeps sigmoid and tanh layers spread; ReLU collapses to 0 with std 0.01, shrinks
layer by layer with Xavier and keeps its second moment with He (``std = sqrt(2/100)``). Batch norm
standardises every pre-activation, so its rows do not depend on the weight scale at all.

Deep sigmoid layers draw combs, not bells: sigmoid's outputs have mean 1/2, so each unit's input carries
a fixed offset (1/2 times the sum of its weights) and the 100 units' narrow distributions sit side by
side. The book's 30 bins blur them; our 40 show them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import nn

from descentlab.figures.base import FigureDefinition, Runs, StoredRun
from descentlab.lab.spec import RunSpec
from descentlab.problems.gaussian_mlp import HIDDEN_LAYERS, SIZES
from descentlab.problems.networks import mlp

PROBLEM = "gaussian-deep-mlp"
RECORD = {
    "record": ["activations", "preactivations", "histograms", "layer_grad_norms"],
    "histogram_steps": [1],
}
LR = 0.01
"""The one SGD step's rate: irrelevant, every measurement is taken before the update."""


@dataclass(frozen=True)
class Configuration:
    """One row of the figure: activation, initial weight scale (model option ``init``), batch norm."""

    activation: str
    init: str | float
    batch_norm: bool = False

    @property
    def label(self) -> str:
        """``"sigmoid, std 1"``, ``"ReLU, He + batch norm"``, ..."""
        name = {"relu": "ReLU"}.get(self.activation, self.activation)
        init = (
            f"std {self.init:g}"
            if isinstance(self.init, float)
            else {"glorot": "Xavier", "he": "He"}[self.init]
        )
        return f"{name}, {init}" + (" + batch norm" if self.batch_norm else "")

    def spec(self) -> RunSpec:
        """The lab run that measures this configuration at initialisation."""
        model = {"activation": self.activation, "init": self.init, "batch_norm": self.batch_norm}
        return RunSpec.create(
            PROBLEM, "sgd", {"lr": LR}, steps=1, batch_size="full", model=model, record=RECORD
        )

    def weight_names(self) -> list[str]:
        """Parameter names of the network's Linear weights, input layer first."""
        with torch.device("meta"):  # the layout only: no memory, no draw from torch's global generator
            network = mlp(SIZES, activation=self.activation, batch_norm=self.batch_norm)
        return [f"{name}.weight" for name, module in network.named_modules() if isinstance(module, nn.Linear)]


CONFIGURATIONS = (
    Configuration("sigmoid", 1.0),
    Configuration("sigmoid", 0.01),
    Configuration("sigmoid", "glorot"),
    Configuration("tanh", "glorot"),
    Configuration("relu", 0.01),
    Configuration("relu", "glorot"),
    Configuration("relu", "he"),
    Configuration("sigmoid", 1.0, batch_norm=True),
    Configuration("sigmoid", 0.01, batch_norm=True),
    Configuration("relu", 0.01, batch_norm=True),
)
"""The book's rows (sigmoid: std 1, std 0.01, Xavier; ReLU: std 0.01, Xavier, He), tanh with Xavier (the
symmetric bell its text prefers), then the three failures again with batch norm."""

X_LIMITS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu": (-0.1, 4.0)}
"""Each activation's window. ReLU's tail beyond 4 (He: about 0.2 % of the values) is off the panel."""
X_TICKS = {"sigmoid": (0.0, 0.5, 1.0), "tanh": (-1.0, 0.0, 1.0), "relu": (0.0, 2.0, 4.0)}

COLLAPSED = 0.01
"""A histogram narrower than this fraction of its window is invisible as bars: say where it lies."""

PREACTIVATION_TITLE = "std of each activation's input (pre-activation)"
GRADIENT_TITLE = "gradient norm of each Linear weight at initialisation"
COLORS = ("#dc2626", "#f97316", "#2563eb", "#7c3aed", "#0d9488", "#65a30d", "#111827")


def init_runs() -> dict[str, RunSpec]:
    """One run per configuration, keyed by its label."""
    return {configuration.label: configuration.spec() for configuration in CONFIGURATIONS}


def instrument(run: StoredRun, kind: str) -> dict:
    """The value of the run's one ``kind`` record (each is taken at step 1 only)."""
    (value,) = [record.value for record in run.instruments if record.kind == kind]
    return value


def histogram_label(configuration: Configuration, layer: int) -> str:
    """The label of the histogram drawn for ``layer`` (1-based) of ``configuration``."""
    return f"{configuration.label}, layer {layer}"


def _density(histogram: dict) -> tuple[np.ndarray, np.ndarray]:
    edges, counts = np.asarray(histogram["edges"]), np.asarray(histogram["counts"], dtype=float)
    widths = np.diff(edges)
    return counts / (counts.sum() * np.where(widths > 0, widths, 1.0)), edges


def _histogram_row(cells: list[Axes], configuration: Configuration, run: StoredRun) -> None:
    """One configuration: a density histogram per layer over the activation's fixed window, std noted.

    Each panel scales its own y-axis: the fixed x window shows how the spread changes with depth.
    """
    statistics = list(instrument(run, "activations").values())
    densities = [_density(h) for h in instrument(run, "histograms").values()]
    relu = configuration.activation == "relu"
    for layer, (axes, (density, edges), values) in enumerate(zip(cells, densities, statistics), start=1):
        color = "#2563eb" if not configuration.batch_norm else "#059669"
        axes.stairs(
            density, edges, fill=True, color=color, alpha=0.75, label=histogram_label(configuration, layer)
        )
        # ReLU's exact zeros (half the values) would flatten the rest of the histogram: leave the first
        # bin out of the scale, as the book does (its ylim), and say how many values are 0.
        top = float(np.max(density[1:] if relu else density))
        x_limits = X_LIMITS[configuration.activation]
        axes.set_xlim(*x_limits)
        axes.set_xticks(X_TICKS[configuration.activation])
        if edges[-1] - edges[0] < COLLAPSED * (x_limits[1] - x_limits[0]):
            axes.text(
                0.5, 0.45, f"all {len(edges) - 1} bins within\n[{edges[0]:.2g}, {edges[-1]:.2g}]",
                transform=axes.transAxes, ha="center", va="center", fontsize=7, color="#b91c1c",
            )  # fmt: skip
        axes.set_ylim(0, 1.08 * top if np.isfinite(top) and top > 0 else 1.0)
        note = f"σ {values['std']:.2g}"
        if relu:
            note += f"\n{values['dead']:.0%} at 0"
        axes.text(0.97, 0.93, note, transform=axes.transAxes, ha="right", va="top", fontsize=7)
        axes.tick_params(labelsize=7)
        axes.set_yticks([])
    cells[0].set_ylabel(configuration.label.replace(" + ", "\n+ ").replace(", ", "\n", 1), fontsize=8)


def _depth_panels(gradients: Axes, preactivations: Axes, runs: Runs) -> None:
    """Per layer, every configuration: the std entering each activation and each weight's gradient norm."""
    colors = {}
    for configuration in CONFIGURATIONS:
        run = runs[configuration.label]
        plain = Configuration(configuration.activation, configuration.init).label
        color = colors.setdefault(plain, COLORS[len(colors) % len(COLORS)])
        style = {"color": color, "linestyle": "--" if configuration.batch_norm else "-", "marker": "o"}
        stds = [values["std"] for values in instrument(run, "preactivations").values()]
        preactivations.plot(range(1, len(stds) + 1), stds, label=configuration.label, **style, markersize=3)
        norms = instrument(run, "layer_grad_norms")
        weights = [norms[name] for name in configuration.weight_names()]
        gradients.plot(range(1, len(weights) + 1), weights, label=configuration.label, **style, markersize=3)
    preactivations.set_title(PREACTIVATION_TITLE, fontsize=10)
    preactivations.set_xlabel("hidden layer")
    preactivations.set_xticks(range(1, HIDDEN_LAYERS + 1))
    gradients.set_title(GRADIENT_TITLE, fontsize=10)
    gradients.set_xlabel(f"Linear layer ({HIDDEN_LAYERS + 1} = output)")
    gradients.set_xticks(range(1, HIDDEN_LAYERS + 2))
    for axes, label in ((preactivations, "std (log scale)"), (gradients, "‖∂L/∂W‖ (log scale)")):
        axes.set_yscale("log")
        axes.set_ylabel(label)
        axes.grid(True, which="major", alpha=0.3)
    gradients.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))


def draw_init_activations(runs: Runs) -> Figure:
    """A row of per-layer histograms per configuration, then the depth profiles of std and gradients."""
    rows = len(CONFIGURATIONS)
    figure = Figure(figsize=(11.5, 1.25 * rows + 3.6), layout="constrained")
    histograms, depth = figure.subfigures(2, 1, height_ratios=[1.25 * rows, 3.6])
    grid = histograms.subplots(rows, HIDDEN_LAYERS, squeeze=False)
    for cells, configuration in zip(grid, CONFIGURATIONS):
        _histogram_row(list(cells), configuration, runs[configuration.label])
    for layer, axes in enumerate(grid[0], start=1):
        axes.set_title(f"layer {layer}", fontsize=10)
    preactivations, gradients = depth.subplots(1, 2, width_ratios=[2, 3])
    _depth_panels(gradients, preactivations, runs)
    figure.suptitle(
        "activations of a 5 x 100 MLP at initialisation, 1000 Gaussian inputs (DLfS ch. 6.2): density of "
        "each layer's 100 000 outputs\nσ: std of those outputs; blue: no normalisation; green: batch norm "
        "before every activation",
        fontsize=11,
    )
    return figure


FIGURES = (
    FigureDefinition(
        "init-activations",
        "activation histograms per layer of a 5x100 MLP for std 1, std 0.01, Xavier, He "
        "(sigmoid/tanh/ReLU), with batch norm; per-layer gradient norms",
        "Saito, Deep Learning from Scratch (2016), ch. 6.2-6.3, figs. 6-10 to 6-14",
        init_runs,
        draw_init_activations,
    ),
)
