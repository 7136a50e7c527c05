"""Random search of the learning rate and the weight decay on a log scale, as ``descentlab tune`` runs it.

Bergstra & Bengio, "Random Search for Hyper-Parameter Optimization", JMLR 13 (2012): sample each
hyperparameter independently, uniformly in its logarithm, and keep the trial with the best validation
score. The trials are one study of the lab's tuning (:func:`descentlab.lab.tuning.run_studies`): its
seeded random sampler, the lab's search-space dimensions, every trial a stored lab run scored by its
validation accuracy at the end of its budget (diverged: worst). Plain SGD on ``digits-mlp`` for the
problem's 600 steps, its weight decay torch's (``w <- w - lr (g + λ w)``) on weights only (the lab
leaves biases out); both ranges are wide enough to hold rates that barely move and rates that diverge,
and decays that do nothing and decays that stop the net from fitting. The figure draws each trial at its
(lr, weight decay), coloured by validation accuracy, diverged trials as crosses and the best trial
marked, with the validation accuracy against each hyperparameter alone beside it.

It is the study of ``descentlab tune --optimizers sgd --problems digits-mlp --seeds 0 --ruleset lr-only
--trials 30 --space lr=0.001:10:log --space weight_decay=1e-05:1:log``: that command, given the
figure's folder, resumes it and trains nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from descentlab.figures.base import FigureDefinition, Runs, StoredRun
from descentlab.lab.spec import RunSpec
from descentlab.lab.tuning import TuneOptions, default_storage_url, run_studies, trial_specs
from descentlab.optim.search_space import Float
from descentlab.problems.registry import get_problem

PROBLEM = "digits-mlp"
OPTIMIZER = "sgd"
TRIALS = 30
SEED = 0
LR = Float("lr", 1e-3, 10.0, "log")
WEIGHT_DECAY = Float("weight_decay", 1e-5, 1.0, "log")
DIMENSIONS = (LR, WEIGHT_DECAY)
COLORMAP = "viridis"
AXIS_PADDING = 0.03
"""Each log axis reaches this fraction of its range's decades beyond the range on either side."""


def tune_options(trials: int = TRIALS) -> TuneOptions:
    """The lab's tuning: random sampler, no pruner, the lr-only ruleset's space with weight decay added
    (``--space`` overrides of :data:`DIMENSIONS`)."""
    space = {dimension.name: dimension.describe() for dimension in DIMENSIONS}
    return TuneOptions(ruleset="lr-only", trials=trials, sampler="random", pruner="none", space=space)


def random_search_trials(
    out_dir: Path, trials: int = TRIALS, steps: int | None = None
) -> tuple[dict[str, RunSpec], int]:
    """Run (or resume) the study into ``out_dir``; its trials as ``{"trial N": spec}`` and how many
    were trained now (``steps`` other than the problem's budget only in tests)."""
    settings = {} if steps is None else {"steps": steps}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the tuning's progress lines say what it does
    try:
        (tuned,) = run_studies(
            out_dir, [OPTIMIZER], [PROBLEM], [SEED], settings=settings, options=tune_options(trials)
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
    specs = trial_specs(tuned, default_storage_url(out_dir), SEED)
    return {f"trial {number}": spec for number, spec in sorted(specs.items())}, tuned.trained


def trial_value(run: StoredRun) -> float | None:
    """The trial's score as the tuning scored it: final validation accuracy, ``None`` when diverged."""
    value = run.summary.final_metric
    if run.outcome != "completed" or value is None or not math.isfinite(value):
        return None
    return value


def best_trial(runs: Runs) -> str:
    """The label of the trial with the highest validation accuracy (the first of equal ones)."""
    scored = {label: trial_value(run) for label, run in runs.items() if trial_value(run) is not None}
    return max(scored, key=scored.get)


def _coordinates(runs: Runs, labels: list[str]) -> np.ndarray:
    return np.array(
        [[runs[label].spec.hyperparameter_dict[d.name] for d in DIMENSIONS] for label in labels], dtype=float
    ).reshape(-1, 2)


def _search_panel(axes: Axes, runs: Runs, scored: dict[str, float], norm: Normalize) -> None:
    labels = list(scored)
    points = _coordinates(runs, labels)
    dots = axes.scatter(
        points[:, 0], points[:, 1], c=[scored[label] for label in labels], cmap=COLORMAP, norm=norm,
        s=55, edgecolors="black", linewidths=0.5, label="trials", zorder=3,
    )  # fmt: skip
    axes.figure.colorbar(dots, ax=axes, label="validation accuracy")
    diverged = [label for label in runs if label not in scored]
    if diverged:
        crosses = _coordinates(runs, diverged)
        axes.plot(crosses[:, 0], crosses[:, 1], "x", color="#dc2626", markersize=7, label="diverged")
    best = best_trial(runs)
    (best_point,) = _coordinates(runs, [best])
    axes.plot(
        *best_point, marker="*", markersize=22, color="none", markeredgecolor="#dc2626", markeredgewidth=1.8,
        linestyle="none", label=f"best: {best}", zorder=4,
    )  # fmt: skip
    axes.annotate(
        f"lr {best_point[0]:.3g}, wd {best_point[1]:.3g}\naccuracy {scored[best]:.3f}", best_point,
        xytext=(10, -28), textcoords="offset points", fontsize=8,
    )  # fmt: skip
    box = [(LR.low, WEIGHT_DECAY.low), (LR.high, WEIGHT_DECAY.low), (LR.high, WEIGHT_DECAY.high),
           (LR.low, WEIGHT_DECAY.high), (LR.low, WEIGHT_DECAY.low)]  # fmt: skip
    axes.plot(*zip(*box), "--", color="#6b7280", linewidth=0.8, label="search space")
    _log_axes(axes, "x", LR)
    _log_axes(axes, "y", WEIGHT_DECAY)
    axes.set_title(f"{len(runs)} random trials over the search space", fontsize=10)
    axes.legend(loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=4, fontsize=8, markerscale=0.6)


def _log_axes(axes: Axes, which: str, dimension: Float) -> None:
    """A log axis over the dimension's range, padded so that trials on its ends are drawn whole."""
    pad = (dimension.high / dimension.low) ** AXIS_PADDING
    getattr(axes, f"set_{which}scale")("log")
    getattr(axes, f"set_{which}lim")(dimension.low / pad, dimension.high * pad)
    getattr(axes, f"set_{which}label")(f"{dimension.name} (log scale)")


def _marginal_panel(axes: Axes, runs: Runs, scored: dict[str, float], column: int, norm: Normalize) -> None:
    labels = list(scored)
    values = _coordinates(runs, labels)[:, column]
    accuracies = [scored[label] for label in labels]
    axes.scatter(values, accuracies, c=accuracies, cmap=COLORMAP, norm=norm, s=25, edgecolors="black",
                 linewidths=0.4)  # fmt: skip
    best = best_trial(runs)
    axes.plot(_coordinates(runs, [best])[0, column], scored[best], "*", markersize=14, color="none",
              markeredgecolor="#dc2626", markeredgewidth=1.5)  # fmt: skip
    _log_axes(axes, "x", DIMENSIONS[column])
    axes.set_ylabel("validation accuracy")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.set_title(f"validation accuracy vs {DIMENSIONS[column].name}", fontsize=10)


def draw_random_search(runs: Runs) -> Figure:
    """The trials over (lr, weight decay) coloured by validation accuracy, and the two projections."""
    figure = Figure(figsize=(15.0, 4.6), layout="constrained")
    search, by_lr, by_decay = figure.subplots(1, 3, width_ratios=(1.35, 1, 1))
    scored = {label: trial_value(run) for label, run in runs.items() if trial_value(run) is not None}
    if not scored:
        raise ValueError(f"all {len(runs)} trials diverged; there is no accuracy to colour them by")
    norm = Normalize(min(scored.values()), max(scored.values()))
    _search_panel(search, runs, scored, norm)
    _marginal_panel(by_lr, runs, scored, 0, norm)
    _marginal_panel(by_decay, runs, scored, 1, norm)
    spec = next(iter(runs.values())).spec
    steps = spec.steps or get_problem(spec.problem).budget_steps
    figure.suptitle(
        f"random search (descentlab tune, seeded random sampler): SGD on {PROBLEM}, {steps} steps per trial"
    )
    return figure


FIGURES = (
    FigureDefinition(
        "random-search",
        "random search of lr and weight decay on a log scale: trials coloured by validation accuracy, "
        "the best marked",
        "Bergstra & Bengio, Random Search for Hyper-Parameter Optimization (JMLR 2012)",
        None,
        draw_random_search,
        train=random_search_trials,
    ),
)
