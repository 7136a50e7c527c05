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

PAGE_DPI = 100
"""Pixels per inch of the page's figures: a 9 pt label is 12.5 px tall."""


def figure_to_data_uri(figure: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, so the page needs no other file."""
    buffer = io.BytesIO()
    # Margins are set when each figure is built: bbox_inches="tight" would draw every figure twice
    # (half of the report's time).
    figure.savefig(buffer, format="png", dpi=PAGE_DPI, facecolor="white")
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
    """Filled loss contours of the 2-D ``function`` over ``bounds``; the axes keep exactly that window.

    The fill is rasterized inside vector output (an SVG keeps its lines and text as vectors, but 30 filled
    levels as paths made every contour SVG 1.6-2 MB).
    """
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
        axes.contourf(
            xs, ys, clipped, levels=levels, norm=LogNorm(), cmap="Greys_r", alpha=0.55, rasterized=True
        )
        axes.contour(xs, ys, clipped, levels=levels, norm=LogNorm(), colors="#9ca3af", linewidths=0.4)
    else:
        axes.contourf(xs, ys, values, levels=30, cmap="Greys_r", alpha=0.55, rasterized=True)
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


FIGURE_WIDTH = 6.3
"""Inches: 630 px at :data:`PAGE_DPI`, less than a card holds on an 800 px screen, so no figure is scaled
down there and its text stays readable; from about 1400 px two figures sit side by side."""

SMALL_MULTIPLES_FROM = 5
"""With this many configurations or more, 2-D paths are drawn one panel each instead of overlapping."""


def legend_columns(labels, width: float = FIGURE_WIDTH) -> int:
    """Columns of a legend of ``labels`` that fit ``width`` inches (at least one, at most three)."""
    longest = max((len(label) for label in labels), default=0)
    return max(1, min(3, int(width // (0.7 + 0.07 * longest)), len(labels)))


def legend_height(labels, width: float = FIGURE_WIDTH) -> float:
    """Inches a legend of ``labels`` under the axes takes (0 without labels)."""
    if not labels:
        return 0.0
    return 0.1 + 0.21 * math.ceil(len(labels) / legend_columns(labels, width))


def unique_legend(figure: Figure) -> tuple[list, list[str]]:
    """Every labelled line of the figure's axes once (the first of each label)."""
    seen: dict[str, object] = {}
    for axes in figure.axes:
        for handle, label in zip(*axes.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def finish_figure(
    figure: Figure,
    plot_height: float,
    left: float = 0.85,
    top: float = 0.35,
    bottom: float = 0.5,
    wspace: float = 0.4,
    hspace: float = 0.55,
) -> None:
    """Give the figure ``plot_height`` inches of axes plus margins (inches) and one legend below, with
    every label drawn once, in as many columns as fit: legends never cover data or leave the figure."""
    handles, labels = unique_legend(figure)
    width = figure.get_figwidth()
    legend = legend_height(labels, width)
    height = plot_height + top + bottom + legend
    figure.set_size_inches(width, height)
    if labels:
        figure.legend(
            handles,
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, legend / height),
            ncol=legend_columns(labels, width),
            frameon=False,
            fontsize=8.5,
        )
    # fixed spacing instead of tight_layout: it lays every tick label out once more (1.7 s a figure)
    figure.subplots_adjust(
        left=left / width,
        right=1 - 0.15 / width,
        bottom=(legend + bottom) / height,
        top=1 - top / height,
        wspace=wspace,
        hspace=hspace,
    )


def split_minima(function, minima) -> tuple[np.ndarray, np.ndarray]:
    """The known minimisers split into global (lowest value, up to float64 rounding) and local ones."""
    points = np.array(minima, dtype=float).reshape(-1, 2)
    if len(points) == 0:
        return points, points
    with torch.no_grad():
        values = function(torch.tensor(points, dtype=torch.float64)).double().numpy()
    lowest = float(values.min())
    best = values <= lowest + 1e-9 * max(1.0, abs(lowest))
    return points[best], points[~best]


def draw_minima(axes, function, minima) -> None:
    """The global minimum as a large gold star, local minima as small white diamonds."""
    best, local = split_minima(function, minima)
    if len(best):
        axes.plot(
            best[:, 0],
            best[:, 1],
            marker="*",
            color="#facc15",
            markeredgecolor="black",
            markersize=14,
            linestyle="none",
            label="global minimum" if len(local) else "minimum",
            zorder=4,
        )
    if len(local):
        axes.plot(
            local[:, 0],
            local[:, 1],
            marker="D",
            color="white",
            markeredgecolor="black",
            markersize=5.5,
            linestyle="none",
            label="local minima",
            zorder=4,
        )


def _first_seed_points(runs: list[dict]) -> tuple[dict, np.ndarray]:
    run = min(runs, key=lambda run: run["seed"])
    points = np.array([(r.x, r.y) for r in run["records"] if r.x is not None and r.y is not None])
    return run, points.reshape(-1, 2)


def _panel_grid(count: int) -> tuple[int, int]:
    columns = 1 if count == 1 else 2 if count <= 4 else 3
    return math.ceil(count / columns), columns


def trajectory_figure(
    problem_runs: ProblemRuns, colors: dict[str, str], highlight: set[str] | None = None
) -> Figure | None:
    """First-seed paths of a 2-D problem over its loss contours, start and minima marked.

    Up to :data:`SMALL_MULTIPLES_FROM` - 1 configurations share one panel; more get one small panel each
    (small multiples), so no path hides another. ``highlight`` is accepted for symmetry with the curves:
    small multiples need none.
    """
    problem = problem_runs.problem
    if problem is None or problem.function is None or problem.bounds is None:
        return None
    runs = {name: _first_seed_points(r) for name, r in problem_runs.runs.items() if r}
    runs = {name: (run, points) for name, (run, points) in runs.items() if len(points)}
    if not runs:
        return None
    panels = [[name] for name in runs] if len(runs) >= SMALL_MULTIPLES_FROM else [list(runs)]
    rows, columns = _panel_grid(len(panels))
    single = len(panels) == 1
    panel = (FIGURE_WIDTH - 0.7) / columns
    figure = Figure(figsize=(FIGURE_WIDTH, rows * panel))
    grid = figure.subplots(rows, columns, squeeze=False)
    for index, names in enumerate(panels):
        axes = grid[index // columns][index % columns]
        draw_contours(axes, problem.function, problem.bounds)
        for name in names:
            run, points = runs[name]
            label = name + (" (diverged)" if run["outcome"] == "diverged" else "")
            # a small multiple's title names its path; the legend keeps the marks they share
            left = draw_path(axes, points, problem.bounds, colors[name], label if single else f"_{label}")
            if not single:
                axes.set_title(label + ("\nleaves the window" if left else ""), fontsize=8)
            if run["seed"] == 0 and problem.start is not None:
                axes.plot(
                    *problem.start, marker="s", color="black", markersize=6, linestyle="none", label="start"
                )
        if problem.minima:
            draw_minima(axes, problem.function, problem.minima)
        axes.set_xlabel("x" if problem.kind == "function2d" else "parameter 0", fontsize=9)
        axes.set_ylabel("y" if problem.kind == "function2d" else "parameter 1", fontsize=9)
        axes.tick_params(labelsize=8)
    for index in range(len(panels), rows * columns):
        grid[index // columns][index % columns].set_visible(False)
    seed = min(run["seed"] for run, _ in runs.values())
    figure.suptitle(f"{problem.name}: paths from the start (seed {seed})", fontsize=10.5)
    # panels a little wider than high; between rows room for the x labels and the next titles
    gap = 0.55 if single else 0.8
    finish_figure(
        figure,
        rows * panel * 0.8 + gap * (rows - 1),
        left=0.6,
        top=0.4 if single else 0.75,
        bottom=0.45,
        wspace=0.35,
        hspace=gap / (panel * 0.8),
    )
    return figure


def sweep_points(rates: dict[str, float | None]) -> tuple[list[tuple[float, float]], list[float]]:
    """A sweep's finished rates as sorted ``(lr, value)`` pairs, and the rates whose run diverged."""
    finished = sorted((float(lr), value) for lr, value in rates.items() if value is not None)
    diverged = sorted(float(lr) for lr, value in rates.items() if value is None)
    return finished, diverged


def _draw_sweep(axes, configuration, color: str, worst: float) -> list[float]:
    """One configuration's sweep: its finished rates, the chosen one ringed, diverged ones crossed at the
    ``worst`` edge (an axes fraction). Returns the values drawn."""
    finished, diverged = sweep_points(configuration.sweep)
    if finished:
        lrs, ys = zip(*finished)
        axes.plot(lrs, ys, "-o", color=color, markersize=3, linewidth=1.2, label=configuration.label)
        chosen = dict(finished).get(configuration.lr) if configuration.lr is not None else None
        if chosen is not None:
            ring = {"markersize": 11, "markerfacecolor": "none", "markeredgewidth": 2}
            axes.plot([configuration.lr], [chosen], "o", color=color, label="_chosen rate", **ring)
    if diverged:
        cross = {"markersize": 8, "markeredgewidth": 2, "clip_on": False}
        transform = axes.get_xaxis_transform()
        axes.plot(
            diverged,
            [worst] * len(diverged),
            "x",
            color=color,
            transform=transform,
            label="_diverged",
            **cross,
        )
    return [value for _, value in finished]


def sweep_figure(problem_runs: ProblemRuns, colors: dict[str, str]) -> Figure | None:
    """Validation metric after the short sweep run, per learning rate and configuration.

    The rate each configuration then ran with is ringed; rates whose sweep run diverged are crosses at
    the worst edge of the axis (they have no value to draw).
    """
    problem = problem_runs.problem
    swept = [c for c in problem_runs.configurations if c.swept and c.sweep]
    if problem is None or not swept:
        return None
    figure = Figure(figsize=(FIGURE_WIDTH, 3.0))
    axes = figure.add_subplot()
    _style(axes)
    worst = 0.0 if problem.higher_is_better else 1.0
    values = [v for c in swept for v in _draw_sweep(axes, c, colors.get(c.label, "black"), worst)]
    axes.set_xscale("log")
    if values and all(value > 0 for value in values) and not problem.higher_is_better:
        # floored like every loss axis: a rate whose short run reached a float32 denormal (1e-40) would
        # otherwise stretch the axis over 40 decades of rounding (curves imports this module)
        from descentlab.lab.report.curves import floor_log_axis, run_dtype

        floor_log_axis(axes, np.asarray(values, dtype=float), run_dtype(problem_runs))
    axes.set_xlabel("learning rate")
    # on learning problems this is the validation split; 2-D functions and textbook models have one
    axes.set_ylabel(f"{problem.metric} after the short run")
    # one black legend entry each for the ring and the cross, whichever configuration they belong to
    if any(line.get_label() == "_chosen rate" for line in axes.lines):
        axes.plot([], [], "o", color="black", markerfacecolor="none", markersize=9, label="chosen rate")
    if any(line.get_label() == "_diverged" for line in axes.lines):
        axes.plot([], [], "x", color="black", markersize=7, markeredgewidth=2, label="diverged (no value)")
    axes.set_title(f"{problem_runs.name}: learning-rate sweep (first seed)", fontsize=10, pad=12)
    finish_figure(figure, 2.6)
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
    width = max(FIGURE_WIDTH, 2.6 * len(costs) + 0.9)
    figure = Figure(figsize=(width, 2.6 * len(TARGET_KINDS)))
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
            axes.set_title(f"{kind} target: {title}", fontsize=9.5)
            axes.set_xlabel("τ (cost / best cost)", fontsize=9)
            axes.set_ylabel("share of problems within τ", fontsize=8.5)
            axes.tick_params(labelsize=8)
    finish_figure(figure, 2.1 * len(TARGET_KINDS) + 0.6, left=0.7, top=0.3, wspace=0.45, hspace=0.5)
    return figure
