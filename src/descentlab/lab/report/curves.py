"""The report's curves: loss and validation metric against steps, gradient evaluations and wall time,
and the step sizes an optimizer took (the "why" of a card).

Rules each figure follows (stated on the page by :data:`CURVES_RULES`):

- every axis has a label, and every loss axis on a log scale is floored at the float resolution of the
  largest loss drawn (:func:`loss_floor`), so one run reaching a float32 denormal does not stretch the
  axis to 1e-40;
- with more than :data:`HIGHLIGHT_MAX` configurations, only the best few are drawn in colour and the
  rest in grey (:func:`highlighted`);
- the wall-time column is drawn only where time per step differs meaningfully between configurations
  (:func:`time_differs`).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from descentlab.lab.report.data import ProblemRuns
from descentlab.lab.report.plots import FIGURE_WIDTH, _style, finish_figure
from descentlab.lab.report.statistics import ConfigurationRow

CURVE_POINTS = 300
"""Curves are drawn through at most about this many points (a 1000-step run needs no more on screen)."""

HIGHLIGHT_MAX = 5
"""Up to this many configurations are all drawn in colour; beyond it only :data:`HIGHLIGHT_BEST`."""

HIGHLIGHT_BEST = 3
"""How many of the best configurations keep their colour when there are too many to tell apart."""

TIME_RATIO = 1.25
"""Wall time is drawn only when the slowest configuration's time per step is this many times the
fastest's ..."""

TIME_MIN_STEP_SECONDS = 1e-3
"""... and its step takes at least this long: below it, time is per-step bookkeeping (a 2-parameter step
takes about 0.1 ms), not the optimizer's cost on the problem."""

OTHERS_COLOR = "#b6bcc6"

CURVES_RULES = (
    f"Loss axes on a log scale stop at the float resolution of the largest starting loss (machine epsilon "
    f"× that loss): smaller values are rounding, and are drawn at the floor. With more than {HIGHLIGHT_MAX} "
    f"configurations the {HIGHLIGHT_BEST} best (and the winner) are drawn in colour, the others in grey. "
    f"The wall-time column appears only where time per step differs by at least {TIME_RATIO:g}× between "
    f"configurations and a step takes at least {TIME_MIN_STEP_SECONDS * 1e3:g} ms, never on a "
    "two-parameter problem."
)

X_AXES = (
    ("step", "step", "steps"),
    ("gradient_evaluations", "gradient evaluations (minibatch units)", "gradient evaluations"),
    ("seconds", "training time (s)", "wall time"),
)
"""The x axes of the curves: steps, gradient evaluations (equal cost), wall time."""


def series(records: list, key: str, x_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Finite ``(x, value)`` of a step-record field (``loss``, ``update_norm``, ...) or validation metric."""
    if key in ("loss", "update_norm", "effective_step_size", "grad_norm"):
        pairs = [(getattr(r, x_key), getattr(r, key)) for r in records]
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


def loss_floor(values: np.ndarray, dtype: str | None = "float32", scale: float | None = None) -> float | None:
    """The bottom of a log loss axis: half the smallest positive value drawn, but never below
    ``eps(dtype) × scale``, the float resolution at the scale the curves start from (default: the
    largest value drawn); below it a loss is rounding.

    ``None`` when a log axis does not fit (no positive value, or a negative one). ``dtype=None``
    floors at half the smallest positive value only (a ratio such as the effective step size has no
    resolution of its own).
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    positive = values[values > 0]
    if len(positive) == 0 or (values < 0).any():
        return None
    lowest = float(positive.min()) / 2
    if dtype is None:
        return lowest
    scale = float(positive.max()) if scale is None or not scale > 0 else scale
    return max(lowest, float(np.finfo(np.dtype(dtype)).eps) * scale)


def run_dtype(problem_runs: ProblemRuns) -> str:
    """The dtype whose resolution floors the problem's loss axes: the coarsest among its runs."""
    dtypes = {run["summary"].dtype for runs in problem_runs.runs.values() for run in runs}
    # the coarsest resolution among the runs decides what is rounding
    return "float16" if "float16" in dtypes else "float32" if "float32" in dtypes or not dtypes else "float64"


def highlighted(problem_runs: ProblemRuns, rows: list[ConfigurationRow]) -> set[str]:
    """The configurations drawn in colour: all of them up to :data:`HIGHLIGHT_MAX`, else the
    :data:`HIGHLIGHT_BEST` best by headline value (fewest diverged seeds first) plus the winner."""
    labels = [c.label for c in problem_runs.configurations]
    if len(labels) <= HIGHLIGHT_MAX:
        return set(labels)
    higher = bool(problem_runs.problem and problem_runs.problem.higher_is_better)

    def rank(row: ConfigurationRow) -> tuple:
        if row.headline is None:
            return (row.diverged, 1, 0.0)
        return (row.diverged, 0, -row.headline.mean if higher else row.headline.mean)

    return {row.label for row in sorted(rows, key=rank)[:HIGHLIGHT_BEST]}


def seconds_per_step(problem_runs: ProblemRuns) -> dict[str, float]:
    """Median over seeds of training seconds per step, per configuration (runs with steps only)."""
    result = {}
    for label, runs in problem_runs.runs.items():
        times = sorted(run["summary"].seconds / run["summary"].steps for run in runs if run["summary"].steps)
        if times:
            result[label] = times[(len(times) - 1) // 2]
    return result


def time_differs(problem_runs: ProblemRuns) -> bool:
    """Whether a wall-time axis says something the step axis does not: never for a two-parameter
    problem (its step is all bookkeeping), else see :data:`TIME_RATIO` and :data:`TIME_MIN_STEP_SECONDS`."""
    problem = problem_runs.problem
    if problem is not None and problem.function is not None:
        return False
    times = [value for value in seconds_per_step(problem_runs).values() if value > 0]
    if len(times) < 2:
        return False
    return max(times) >= TIME_MIN_STEP_SECONDS and max(times) >= TIME_RATIO * min(times)


def _band(axes, runs: list[dict], key: str, x_key: str, color: str, label: str, smooth: bool) -> np.ndarray:
    """Mean over seeds with a min-max band; x is the step, or the mean of ``x_key`` at that step.

    Returns the values drawn (empty when none).
    """
    curves = []
    for run in runs:
        steps, values = series(run["records"], key, "step")
        xs, _ = series(run["records"], key, x_key)
        if len(values):
            curves.append((steps, xs, _smooth(values) if smooth else values))
    if not curves:
        return np.empty(0)
    length = min(len(curve[0]) for curve in curves)  # diverged seeds stop early: show the common part
    every = max(1, -(-length // CURVE_POINTS))
    keep = np.unique(np.r_[np.arange(0, length, every), length - 1])  # always keep the last point
    stacked = np.stack([curve[2][:length][keep] for curve in curves])
    x = np.mean(np.stack([curve[1][:length][keep] for curve in curves]), axis=0)
    grey = color == OTHERS_COLOR
    axes.plot(
        x,
        stacked.mean(axis=0),
        color=color,
        linewidth=0.9 if grey else 1.6,
        label=label,
        zorder=1 if grey else 2,
    )
    if len(curves) > 1 and not grey:
        axes.fill_between(x, stacked.min(axis=0), stacked.max(axis=0), color=color, alpha=0.18, linewidth=0)
    return stacked


def floor_log_axis(axes, values: np.ndarray, dtype: str | None, scale: float | None = None) -> float | None:
    """Log-scale ``axes`` floored by :func:`loss_floor` (values below are drawn at the floor, noted)."""
    floor = loss_floor(values, dtype, scale)
    if floor is None:
        return None
    axes.set_yscale("log")
    axes.set_ylim(bottom=floor)
    for line in axes.lines:
        y = np.asarray(line.get_ydata(), dtype=float)
        if (y < floor).any():
            line.set_ydata(np.maximum(y, floor))
    for collection in axes.collections:  # min-max bands
        for path in collection.get_paths():
            path.vertices[:, 1] = np.maximum(path.vertices[:, 1], floor)
    if (values[np.isfinite(values)] < floor).any():
        axes.text(
            0.01,
            0.01,
            f"floor {floor:.1e}: {dtype} resolution",
            transform=axes.transAxes,
            fontsize=7,
            color="#6b7280",
            va="bottom",
        )
    return floor


def _draw_configurations(
    axes, problem_runs, colors, highlight, key, x_key, smooth
) -> tuple[np.ndarray, float]:
    """Every configuration's band; returns the values drawn and the largest value a curve starts at
    (the scale of the float resolution: a diverging curve's peak says nothing about rounding)."""
    drawn, starts = [], []
    for name, runs in problem_runs.runs.items():
        bright = name in highlight
        label = name if bright else f"others ({len(problem_runs.runs) - len(highlight)})"
        values = _band(axes, runs, key, x_key, colors[name] if bright else OTHERS_COLOR, label, smooth)
        drawn.append(values.reshape(-1))
        if values.size:
            starts.append(float(np.abs(values[:, 0]).max()))
    return (np.concatenate(drawn) if drawn else np.empty(0)), max(starts, default=0.0)


def curves_figures(
    problem_runs: ProblemRuns, colors: dict[str, str], highlight: set[str] | None = None
) -> list[tuple[Figure, str]]:
    """One figure per x axis in use: training loss (and validation metric on learning problems).

    The gradient-evaluation column is drawn only when some configuration spends more than one gradient
    evaluation per step (SVRG, line search, Newton), the wall-time one only where :func:`time_differs`.
    """
    problem = problem_runs.problem
    highlight = set(problem_runs.runs) if highlight is None else highlight
    metric = problem.metric if problem else "loss"
    learning = problem is not None and problem.kind == "learning"
    panels = [("loss", "training loss"), (metric, f"validation {metric}")] if learning else [("loss", "loss")]
    costly = any(
        run["records"] and run["records"][-1].gradient_evaluations != run["records"][-1].step
        for runs in problem_runs.runs.values()
        for run in runs
    )
    timed = time_differs(problem_runs)
    used = [a for a in X_AXES if (costly or a[0] != "gradient_evaluations") and (timed or a[0] != "seconds")]
    figures = []
    for x_key, x_label, x_title in used:
        figure, grid = _curve_grid(len(panels))
        for row, (key, title) in enumerate(panels):
            axes = grid[row][0]
            _style(axes)
            values, start = _draw_configurations(
                axes, problem_runs, colors, highlight, key, x_key, smooth=key == "loss" and learning
            )
            if key == "loss" and len(values):
                floor_log_axis(axes, values, run_dtype(problem_runs), start)
            axes.set_xlabel(x_label)
            axes.set_ylabel(title if key == "loss" else f"{metric} (validation)")
            axes.set_title(f"{problem_runs.name}: {title} vs {x_title}", fontsize=10)
            if problem is not None and problem.target is not None and key == metric and key != "loss":
                axes.axhline(problem.target, color="#6b7280", linestyle="--", linewidth=0.9, label="target")
        finish_figure(figure, 2.4 * len(panels) + 0.55 * (len(panels) - 1))
        figures.append((figure, f"{x_title} curves"))
    return figures


def _curve_grid(rows: int, columns: int = 1):
    figure = Figure(figsize=(FIGURE_WIDTH, 2.6 * rows))
    return figure, figure.subplots(rows, columns, squeeze=False)


STEP_PANELS = (
    ("effective_step_size", "effective step size", "‖Δθ‖ / ‖g‖", False),
    ("update_norm", "update norm", "‖Δθ‖ (parameter change)", True),
)
"""The step-size panels: record field, title, y label, whether it has the parameters' resolution."""


def step_size_figure(
    problem_runs: ProblemRuns, colors: dict[str, str], highlight: set[str] | None = None
) -> Figure | None:
    """Effective step size (update norm / gradient norm) and update norm over steps, per configuration.

    Both come from every step record; for plain SGD the effective step size is the learning rate
    itself, for adaptive methods it shows how far their per-coordinate scaling moved it.
    """
    highlight = set(problem_runs.runs) if highlight is None else highlight
    if not any(
        series(run["records"], "update_norm", "step")[1].size for r in problem_runs.runs.values() for run in r
    ):
        return None
    figure, grid = _curve_grid(1, 2)
    for column, (key, title, y_label, resolved) in enumerate(STEP_PANELS):
        axes = grid[0][column]
        _style(axes)
        values, start = _draw_configurations(axes, problem_runs, colors, highlight, key, "step", smooth=False)
        if len(values):
            floor_log_axis(axes, values, run_dtype(problem_runs) if resolved else None, start)
        axes.set_xlabel("step")
        axes.set_ylabel(y_label, fontsize=9)
        axes.set_title(title, fontsize=10)
        axes.tick_params(labelsize=8)
    finish_figure(figure, 2.3)
    return figure
