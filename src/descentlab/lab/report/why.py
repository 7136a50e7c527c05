"""The "why" under each problem card: step sizes over steps for every configuration, and the library's
analysis tools (:mod:`descentlab.analysis`) on the best configuration's end point.

Cost is bounded by :data:`RULE`: one configuration per problem (the winner, else the first of the tie),
its first seed, and only models of at most :data:`ANALYSIS_MAX_PARAMETERS` trainable parameters. The
store keeps no parameters, so the end point is found by training that one run again (a run is a
function of its spec and seed) and checked against the stored final loss.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from descentlab.analysis import (
    HessianOperator,
    lr_range_test,
    plot_lr_range_test,
    plot_spectral_density,
    plot_trajectory,
    project_trajectory,
    spectral_density,
    top_eigenvalues,
    trajectory_loss_surface,
)
from descentlab.lab.report import curves, plots
from descentlab.lab.report.data import ConfigurationRuns, ProblemRuns
from descentlab.lab.report.model import Analysis, Image, Why
from descentlab.lab.report.statistics import ConfigurationRow
from descentlab.lab.runner import Training, train, training_threads
from descentlab.lab.verdicts import Verdict

ANALYSIS_MAX_PARAMETERS = 5000
"""Models with more trainable parameters get no end-point analysis (it would cost minutes)."""

LANDSCAPE_RESOLUTION = 15
"""Grid points per axis of the loss surface around the end point (225 loss evaluations)."""

LR_RANGE_STEPS = 100
"""Steps of the learning-rate range test, from the configuration's start."""

HESSIAN_TOP = 3
"""How many of the largest Hessian eigenvalues are reported."""

TRAJECTORY_POINTS = 200
"""At most this many recorded iterates are kept for the trajectory's projection."""

SHORT_RULE = (
    "Step sizes of every configuration; the end-point analysis only for the best configuration, on its "
    f"first seed, for models of at most {ANALYSIS_MAX_PARAMETERS} parameters (see How to read this)."
)

RULE = (
    "Why, one click away under each problem: the effective step size (‖Δθ‖ / ‖g‖) and the update norm "
    "of every configuration over its steps, then, for the best configuration only (the winner, else the "
    "first of the tie), on its first seed and only for models of at most "
    f"{ANALYSIS_MAX_PARAMETERS} parameters: the loss surface on the plane of its trajectory's two "
    "principal directions around the end point, the Hessian's largest eigenvalues and spectral density "
    f"there (Lanczos), and a {LR_RANGE_STEPS}-step learning-rate range test from the start. The end point "
    "is found by training that run again, checked against its stored final loss; the analysis uses the "
    "full training loss (without penalties) and costs one run plus a few hundred loss evaluations."
)


def why_panel(
    problem_runs: ProblemRuns,
    rows: list[ConfigurationRow],
    verdict: Verdict,
    colors: dict[str, str],
    analysis: bool = True,
) -> Why | None:
    """The why of one problem card (``None`` for an unregistered problem: nothing to rebuild);
    ``analysis=False`` keeps only the step sizes."""
    if problem_runs.problem is None:
        return None
    highlight = curves.highlighted(problem_runs, rows)
    figure = curves.step_size_figure(problem_runs, colors, highlight)
    figures = (
        [] if figure is None else [Image(plots.figure_to_data_uri(figure), f"{problem_runs.name} step sizes")]
    )
    best = verdict.winner or (verdict.tied[0] if verdict.tied else None)
    if not analysis:
        analyses = []
    elif best is None:
        analyses = [Analysis("no end-point analysis", skipped="Every configuration diverged: no end point.")]
    else:
        configuration = next(c for c in problem_runs.configurations if c.label == best)
        analyses = [analyse(configuration)]
    return Why(figures, SHORT_RULE, analyses)


def _batch_size(batch: Any) -> int:
    if isinstance(batch, tuple | list) and batch and isinstance(batch[0], torch.Tensor):
        return len(batch[0])
    return len(batch) if isinstance(batch, torch.Tensor) else 1


def fixed_loss(task) -> Any:
    """The training loss over fixed data: the whole training set where the task has one (weighted by
    batch size, as :attr:`~descentlab.problems.base.Task.epoch_batches` defines), else one minibatch."""
    batches = list(task.epoch_batches()) if task.epoch_batches is not None else [next(task.batches)]
    sizes = [_batch_size(batch) for batch in batches]
    total = sum(sizes)
    return lambda: sum(task.loss(batch) * (size / total) for batch, size in zip(batches, sizes))


def retrain(configuration: ConfigurationRuns) -> tuple[Training, list[torch.Tensor], Any]:
    """Train the first seed of ``configuration`` again, keeping its iterates; the stored run's result
    and this one's are returned for the caller to compare."""
    run = configuration.runs[0]
    training = Training(run["spec"])
    points: list[torch.Tensor] = []
    training.on_record = lambda _record: points.append(training.point())
    return training, points, train(training)


def analyse(configuration: ConfigurationRuns) -> Analysis:
    """The end-point analysis of one configuration, or the reason it was skipped.

    Runs on the lab's training threads (one by default), as the runs themselves did. A tool that
    refuses the point (``ValueError``/``RuntimeError``: a trajectory that never moved, ...) leaves the
    reason on the page instead.
    """
    try:
        with training_threads():
            return _analyse(configuration)
    except (ValueError, RuntimeError) as error:  # a tool refusing this point must not cost the report
        message = " ".join(str(error).split())
        return Analysis(configuration.label, skipped=f"No end-point analysis: {message}")


def _analyse(configuration: ConfigurationRuns) -> Analysis:
    started = time.perf_counter()
    analysis = Analysis(configuration.label)
    fresh = Training(configuration.runs[0]["spec"])  # at the start: its size, then the LR range test
    count = sum(p.numel() for p in fresh.task.model.parameters() if p.requires_grad)
    if count > ANALYSIS_MAX_PARAMETERS:
        analysis.skipped = (
            f"{count} parameters: above the {ANALYSIS_MAX_PARAMETERS} the analysis is made for."
        )
        return analysis
    stored = configuration.runs[0]
    if stored["outcome"] != "completed":
        analysis.skipped = f"Its first seed ended {stored['outcome']}: no end point to analyse."
        return analysis
    training, points, result = retrain(configuration)
    if result.summary.final_loss != stored["summary"].final_loss:
        analysis.skipped = (
            f"Training again gave final loss {result.summary.final_loss}, not the stored "
            f"{stored['summary'].final_loss}: the run does not reproduce here, so no end point is shown."
        )
        return analysis
    model, loss_fn = training.task.model, fixed_loss(training.task)
    with training.at_iterate():
        _end_point(analysis, model, loss_fn, points)
    _range_test(analysis, fresh, configuration.lr)
    analysis.facts.append(
        f"Seed {stored['seed']}, {count} parameters; end point reproduced (final training loss "
        f"{result.summary.final_loss:.6g}, as stored); analysis took {time.perf_counter() - started:.2f} s."
    )
    return analysis


def _image(figure, alt: str) -> Image:
    return Image(plots.figure_to_data_uri(figure), alt)


def _end_point(analysis: Analysis, model, loss_fn, points: list[torch.Tensor]) -> None:
    every = max(1, math.ceil(len(points) / TRAJECTORY_POINTS))
    kept = [*points[:-1:every], points[-1]]
    projection = project_trajectory(kept)
    surface = trajectory_loss_surface(
        model, loss_fn, projection, resolution=LANDSCAPE_RESOLUTION, progress=False, report=None
    )
    figure = plot_trajectory(projection, surface)
    figure.axes[0].set_title(f"{analysis.label}: trajectory on its PCA plane", fontsize=9)
    analysis.figures.append(_image(figure, f"{analysis.label} loss surface around the end point"))
    operator = HessianOperator(model, loss_fn)
    top = top_eigenvalues(operator, k=min(HESSIAN_TOP, operator.dim), steps=min(operator.dim, 40))
    values = ", ".join(f"{value:.4g}" for value in top.values.tolist())
    analysis.facts.append(
        f"Largest Hessian eigenvalues at the end point: {values} (Lanczos, {top.steps} steps)."
    )
    if float(top.values[0]) > 0:
        analysis.facts.append(
            f"Stability edge of plain gradient descent there: lr < 2/λmax = {2 / float(top.values[0]):.4g}."
        )
    density = spectral_density(operator, vectors=4, steps=min(operator.dim, 30))
    figure = plot_spectral_density(density)
    axes = figure.axes[0]
    # six decades below the peak say all there is; the plot's own floor is 1e-12
    axes.set_ylim(bottom=float(density.density.max()) * 1e-6)
    for value in top.values.tolist():
        axes.axvline(value, color="tab:red", linestyle=":", linewidth=1)
    analysis.figures.append(_image(figure, f"{analysis.label} Hessian spectral density"))


def _range_test(analysis: Analysis, training: Training, lr: float | None) -> None:
    if training.protocol != "gradient":
        analysis.facts.append(f"No LR range test: {training.protocol}-driven optimizers take no plain step.")
        return
    task = training.task
    result = lr_range_test(
        task.model,
        training.optimizer,
        lambda: task.loss(next(task.batches)),
        steps=LR_RANGE_STEPS,
        progress=False,
    )
    figure = plot_lr_range_test(result)
    if lr is not None:
        figure.axes[0].axvline(lr, color="black", linewidth=1.2, label=f"used: {lr:.3g}")
        figure.axes[0].legend(loc="best", fontsize="small")
    analysis.figures.append(_image(figure, f"{analysis.label} learning-rate range test"))
    analysis.facts.append(f"LR range test: {result.summary()}.")
