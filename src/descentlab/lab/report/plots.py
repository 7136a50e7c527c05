"""The report's figures, drawn with matplotlib ``Figure`` objects (no pyplot, no display) as PNG bytes."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from descentlab.lab.report.data import ProblemRuns
from descentlab.lab.report.profiles import TARGET_KINDS, TAU_MAX, GroupProfiles

GRID_POINTS = 200
"""Contour grid resolution per axis."""

CURVE_POINTS = 300
"""Curves are drawn through at most about this many points (a 1000-step run needs no more on screen)."""


def figure_to_data_uri(figure: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, so the page needs no other file."""
    buffer = io.BytesIO()
    # Margins are set when each figure is built: bbox_inches="tight" would draw every figure twice
    # (half of the report's time).
    figure.savefig(buffer, format="png", dpi=110, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def legend_margin(labels, fontsize: float = 9) -> float:
    """Inches to keep free right of the axes for a one-column legend of ``labels``."""
    longest = max((len(label) for label in labels), default=0)
    # the line sample takes about 0.8 in; a character about 0.075 in at 9 pt
    return min(6.0, 0.9 + 0.075 * fontsize / 9 * longest)


def _style(axes) -> None:
    axes.grid(True, color="#e5e7eb", linewidth=0.7)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)


Bounds = tuple[tuple[float, float], tuple[float, float]]


def draw_contours(axes, function, bounds: Bounds) -> None:
    """Filled loss contours of the 2-D ``function`` over ``bounds``; the axes keep exactly that window."""
    (x_min, x_max), (y_min, y_max) = bounds
    xs = np.linspace(x_min, x_max, GRID_POINTS)
    ys = np.linspace(y_min, y_max, GRID_POINTS)
    grid = torch.tensor(np.stack(np.meshgrid(xs, ys), axis=-1), dtype=torch.float64)
    with torch.no_grad():
        values = function(grid).double().numpy()
    finite = values[np.isfinite(values)]
    if float(finite.min()) >= 0 and float(finite.max()) > 0:
        # log-spaced levels show both the narrow valley floor and the steep walls
        floor = max(np.quantile(finite[finite > 0], 0.002), float(finite.max()) * 1e-8)
        levels = np.geomspace(floor, float(finite.max()), 30)
        clipped = np.clip(values, floor, None)
        axes.contourf(xs, ys, clipped, levels=levels, norm=LogNorm(), cmap="Greys_r", alpha=0.55)
        axes.contour(xs, ys, clipped, levels=levels, norm=LogNorm(), colors="#9ca3af", linewidths=0.4)
    else:
        axes.contourf(xs, ys, values, levels=30, cmap="Greys_r", alpha=0.55)
        axes.contour(xs, ys, values, levels=30, colors="#9ca3af", linewidths=0.4)
    axes.set_xlim(x_min, x_max)
    axes.set_ylim(y_min, y_max)


def window_exits(points: np.ndarray, bounds: Bounds) -> np.ndarray:
    """Where a path crosses out of ``bounds``: one boundary point per step from inside to outside."""
    (x_min, x_max), (y_min, y_max) = bounds
    low, high = np.array([x_min, y_min]), np.array([x_max, y_max])
    inside = np.all((points >= low) & (points <= high), axis=1)
    exits = []
    for index in np.flatnonzero(inside[:-1] & ~inside[1:]):
        start, end = points[index], points[index + 1]
        delta = end - start
        # the largest fraction of the step that stays inside, per axis, then the first wall hit
        with np.errstate(divide="ignore", invalid="ignore"):
            limits = np.where(
                delta > 0, (high - start) / delta, np.where(delta < 0, (low - start) / delta, 1)
            )
        exits.append(start + min(1.0, float(limits.min())) * delta)
    return np.array(exits).reshape(-1, 2)


def draw_path(axes, points: np.ndarray, bounds: Bounds, color: str, label: str) -> bool:
    """Draw a 2-D path; where it leaves the window it is cut at the edge and marked with an x.

    Returns whether the path left the window (its label then says so).
    """
    exits = window_exits(points, bounds)
    left = len(exits) > 0
    axes.plot(
        points[:, 0],
        points[:, 1],
        "-o",
        color=color,
        markersize=2.2,
        linewidth=1.4,
        label=label + (" (leaves the window)" if left else ""),
        alpha=0.95,
    )
    if left:
        axes.plot(
            exits[:, 0], exits[:, 1], "X", color=color, markeredgecolor="black", markersize=9, clip_on=False
        )
    return left


def trajectory_figure(problem_runs: ProblemRuns, colors: dict[str, str]) -> Figure | None:
    """First-seed trajectories of every configuration over the loss contours of a 2-D problem."""
    problem = problem_runs.problem
    if problem is None or problem.function is None or problem.bounds is None:
        return None
    margin = legend_margin([*problem_runs.runs, "minimum (diverged)"], 9)
    figure = Figure(figsize=(5.4 + margin, 4.6))
    figure.subplots_adjust(
        left=0.7 / (5.4 + margin), right=1 - margin / (5.4 + margin), bottom=0.11, top=0.93
    )
    axes = figure.add_subplot()
    draw_contours(axes, problem.function, problem.bounds)
    run = None
    for name, runs in problem_runs.runs.items():
        run = min(runs, key=lambda run: run["seed"])
        points = np.array([(r.x, r.y) for r in run["records"] if r.x is not None and r.y is not None])
        if len(points) == 0:
            continue
        label = name + (" (diverged)" if run["outcome"] == "diverged" else "")
        draw_path(axes, points, problem.bounds, colors[name], label)
    if problem.start is not None and run is not None and run["seed"] == 0:
        axes.plot(*problem.start, marker="s", color="black", markersize=7, linestyle="none", label="start")
    if problem.minima:
        minima = np.array(problem.minima)
        axes.plot(
            minima[:, 0],
            minima[:, 1],
            marker="*",
            color="#facc15",
            markeredgecolor="black",
            markersize=14,
            linestyle="none",
            label="minimum" if len(minima) == 1 else "minima",
        )
    axes.set_xlabel("x" if problem.kind == "function2d" else "parameter 0")
    axes.set_ylabel("y" if problem.kind == "function2d" else "parameter 1")
    seed = run["seed"] if run is not None else 0
    axes.set_title(f"{problem.name}: paths from the start (seed {seed})", fontsize=11)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    return figure


def _series(records: list, key: str, x_key: str) -> tuple[np.ndarray, np.ndarray]:
    if key == "loss":
        pairs = [(getattr(r, x_key), r.loss) for r in records if r.loss is not None]
    else:
        pairs = [(getattr(r, x_key), r.metrics[key]) for r in records if r.metrics and key in r.metrics]
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None and math.isfinite(y)]
    if not pairs:
        return np.empty(0), np.empty(0)
    array = np.array(pairs, dtype=float)
    return array[:, 0], array[:, 1]


def _smooth(values: np.ndarray) -> np.ndarray:
    """Running mean over 1/50 of the points: minibatch losses are too noisy to read raw."""
    window = max(1, len(values) // 50)
    if window == 1:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def _band(axes, runs: list[dict], key: str, x_key: str, color: str, label: str, smooth: bool) -> bool:
    """Mean over seeds with a min-max band; x is the step, or the mean of ``x_key`` at that step."""
    curves = []
    for run in runs:
        steps, values = _series(run["records"], key, "step")
        xs, _ = _series(run["records"], key, x_key)
        if len(values):
            curves.append((steps, xs, _smooth(values) if smooth else values))
    if not curves:
        return False
    length = min(len(curve[0]) for curve in curves)  # diverged seeds stop early: show the common part
    every = max(1, -(-length // CURVE_POINTS))
    keep = np.unique(np.r_[np.arange(0, length, every), length - 1])  # always keep the last point
    stacked = np.stack([curve[2][:length][keep] for curve in curves])
    x = np.mean(np.stack([curve[1][:length][keep] for curve in curves]), axis=0)
    axes.plot(x, stacked.mean(axis=0), color=color, linewidth=1.6, label=label)
    if len(curves) > 1:
        axes.fill_between(x, stacked.min(axis=0), stacked.max(axis=0), color=color, alpha=0.18, linewidth=0)
    return True


X_AXES = (
    ("step", "step", "steps"),
    ("gradient_evaluations", "gradient evaluations (minibatch units)", "gradient evaluations"),
    ("seconds", "training time (s)", "wall time"),
)
"""The x axes of the curves: steps, gradient evaluations (equal cost), wall time."""


def curves_figure(problem_runs: ProblemRuns, colors: dict[str, str]) -> Figure:
    """Training loss (and validation metric) against steps, gradient evaluations and wall time.

    The gradient-evaluation column is drawn only when some configuration spends more than one gradient
    evaluation per step (SVRG, line search, Newton); otherwise it would repeat the step column.
    """
    problem = problem_runs.problem
    metric = problem.metric if problem else "loss"
    learning = problem is not None and problem.kind == "learning"
    panels = [("loss", "training loss"), (metric, f"validation {metric}")] if learning else [("loss", "loss")]
    # the gradient-evaluation axis only says something new when some step costs more than one
    costly = any(
        run["records"] and run["records"][-1].gradient_evaluations != run["records"][-1].step
        for runs in problem_runs.runs.values()
        for run in runs
    )
    axes_used = [axis for axis in X_AXES if costly or axis[0] != "gradient_evaluations"]
    margin = legend_margin(list(problem_runs.runs), 9)
    figure = Figure(figsize=(4.2 * len(axes_used) + 0.85 + margin, 7.2 if learning else 3.8))
    grid = figure.subplots(2 if learning else 1, len(axes_used), squeeze=False)
    for column, (x_key, x_label, x_title) in enumerate(axes_used):
        for row, (key, title) in enumerate(panels):
            axes = grid[row][column] if learning else grid[0][column]
            _style(axes)
            drawn = False
            for name, runs in problem_runs.runs.items():
                drawn |= _band(axes, runs, key, x_key, colors[name], name, smooth=key == "loss" and learning)
            if key == "loss" and drawn:
                _log_scale_if_positive(axes, problem_runs)
            axes.set_xlabel(x_label)
            axes.set_title(f"{title} vs {x_title}", fontsize=10)
            if problem is not None and problem.target is not None and key == metric and key != "loss":
                axes.axhline(problem.target, color="#6b7280", linestyle="--", linewidth=0.9)
    handles, labels = grid[0][0].get_legend_handles_labels()
    if handles:
        right = 1 - margin / figure.get_figwidth()
        figure.legend(
            handles, labels, loc="center left", frameon=False, bbox_to_anchor=(right, 0.5), fontsize=9
        )
    # fixed spacing instead of tight_layout: it lays every tick label out once more (1.7 s a figure)
    width = figure.get_figwidth()
    figure.subplots_adjust(
        left=0.85 / width,
        right=1 - (margin + 0.1) / width,
        bottom=0.6 / figure.get_figheight(),
        top=1 - 0.35 / figure.get_figheight(),
        wspace=0.25,
        hspace=0.35,
    )
    return figure


def _log_scale_if_positive(axes, problem_runs: ProblemRuns) -> None:
    """Log-scale a loss axis when no loss is negative; exact zeros (a minimum reached) are left out."""
    values = np.concatenate(
        [_series(run["records"], "loss", "step")[1] for runs in problem_runs.runs.values() for run in runs]
        or [np.empty(0)]
    )
    positive = values[values > 0]
    if len(positive) == 0 or (values < 0).any():
        return
    axes.set_yscale("log", nonpositive="mask")
    axes.set_ylim(bottom=float(positive.min()) / 2)


def sweep_figure(
    problem_name: str,
    sweep: dict[str, dict[str, float | None]],
    colors: dict[str, str],
    metric: str,
    higher_is_better: bool,
) -> Figure | None:
    """Validation metric of each sweep learning rate per configuration (diverged rates left out)."""
    sweep = {name: rates for name, rates in sweep.items() if rates}
    if not sweep:
        return None
    margin = legend_margin(list(sweep), 8)
    figure = Figure(figsize=(4.6 + margin, 4.0))
    figure.subplots_adjust(
        left=0.8 / (4.6 + margin), right=1 - margin / (4.6 + margin), bottom=0.13, top=0.92
    )
    axes = figure.add_subplot()
    _style(axes)
    all_positive = True
    for name, rates in sweep.items():
        points = sorted((float(lr), value) for lr, value in rates.items() if value is not None)
        if not points:
            continue
        lrs, values = zip(*points)
        all_positive &= all(value > 0 for value in values)
        axes.plot(
            lrs,
            values,
            "-o",
            color=colors.get(name, "black"),
            markersize=3,
            linewidth=1.2,
            label=name,
        )
    axes.set_xscale("log")
    if all_positive and not higher_is_better:
        axes.set_yscale("log")
    axes.set_xlabel("learning rate")
    # on learning problems this is the validation split; 2-D functions and textbook models have one
    axes.set_ylabel(f"{metric} after the short run (first seed)")
    axes.set_title(f"{problem_name}: learning-rate sweep", fontsize=10)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8)
    return figure


PROFILE_COSTS = (
    ("steps", "steps"),
    ("gradient_evaluations", "gradient evaluations"),
    ("seconds", "training seconds"),
)
"""The cost of each column of the profile figure and its title."""


def profile_costs(profiles: GroupProfiles) -> list[tuple[str, str]]:
    """The costs worth a column: gradient evaluations only when some step costs other than one."""
    return [cost for cost in PROFILE_COSTS if profiles.costly or cost[0] != "gradient_evaluations"]


def profile_figure(profiles: GroupProfiles, colors: dict[str, str]) -> Figure | None:
    """Performance profiles (a row per target, a column per cost) with their 95 % bootstrap bands."""
    if not profiles.profiles:
        return None
    costs = profile_costs(profiles)
    margin = legend_margin(profiles.solvers, 9)
    figure = Figure(figsize=(3.9 * len(costs) + 0.8 + margin, 6.6))
    grid = figure.subplots(len(TARGET_KINDS), len(costs), squeeze=False)
    for row, kind in enumerate(TARGET_KINDS):
        for column, (cost, title) in enumerate(costs):
            axes = grid[row][column]
            _style(axes)
            estimate = profiles.profiles[(kind, cost)]
            for index, solver in enumerate(profiles.solvers):
                color = colors[solver]
                axes.step(estimate.taus, estimate.rho[index], where="post", color=color, label=solver)
                axes.fill_between(
                    estimate.taus,
                    estimate.rho_low[index],
                    estimate.rho_high[index],
                    step="post",
                    color=color,
                    alpha=0.15,
                    linewidth=0,
                )
            axes.set_xlim(1.0, TAU_MAX)
            axes.set_ylim(-0.02, 1.02)
            axes.set_title(f"{kind} target: {title}", fontsize=10)
            axes.set_xlabel("τ (cost / best cost)")
            if column == 0:
                axes.set_ylabel("share of problems within τ")
    handles, labels = grid[0][0].get_legend_handles_labels()
    width = figure.get_figwidth()
    right = 1 - margin / width
    figure.legend(handles, labels, loc="center left", frameon=False, bbox_to_anchor=(right, 0.5), fontsize=9)
    figure.subplots_adjust(
        left=0.75 / width, right=1 - (margin + 0.1) / width, bottom=0.09, top=0.95, wspace=0.25, hspace=0.4
    )
    return figure
