"""The explorer page: every path computed ahead of time, packed small, rendered from one template.

The page holds no optimizer: it looks up the precomputed path of the chosen slider values and draws
it. Coordinates are quantised to 16-bit integers over :func:`~descentlab.explore.paths.extended_window`
(a step of 3/65535 of the window width, well under a pixel), losses to 16 bits of their logarithm
(or of the value itself where the loss can be negative), and the contour is one shared PNG.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from matplotlib.figure import Figure

from descentlab.atomic import write_text
from descentlab.explore.grid import (
    Slider,
    averaging_sliders,
    checked_starts,
    default_starts,
    lowest_ending,
    lr_slider,
    settings_of,
)
from descentlab.explore.paths import compute_paths, explorable_problem, extended_window, surface_values
from descentlab.lab.report.plots import draw_contours
from descentlab.lab.runner import training_threads
from descentlab.optim.registry import get_optimizer_class, optimizer_classes
from descentlab.problems.base import Problem

DEFAULT_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
"""The optimizers of the default page: the textbook sequence from plain steps to Adam."""

STEPS_CAP = 200
"""Steps per path by default: the problem's budget, at most this (the page size grows with it)."""

PLOT_WIDTH = 640
"""Width in pixels of the contour image (its height follows the window's shape)."""

_LEVELS = 65535


@dataclass
class OptimizerPaths:
    """The precomputed paths of one optimizer: its sliders and an array ``(settings, starts, steps + 1, 2)``.

    ``settings`` enumerates every combination of the slider values, the last slider varying fastest;
    ``seconds`` is the CPU time they took (the learning-rate scan included).
    """

    name: str
    reference: str
    sliders: list[Slider]
    paths: np.ndarray
    seconds: float


@dataclass
class Explorer:
    """Everything the page shows: the problem, the starts, and each optimizer's paths."""

    problem: Problem
    starts: list[tuple[float, float]]
    steps: int
    optimizers: list[OptimizerPaths] = field(default_factory=list)


def build_explorer(
    problem_name: str,
    optimizers: Sequence[str] = DEFAULT_OPTIMIZERS,
    steps: int | None = None,
    starts: Sequence[Sequence[float]] | None = None,
) -> Explorer:
    """Compute every path of the page: for each optimizer, every slider combination from every start.

    Args:
        problem_name: a 2-D problem of the registry.
        optimizers: registry names of the optimizers to offer.
        steps: steps per path (default: the problem's budget, at most :data:`STEPS_CAP`).
        starts: the start points (default :func:`~descentlab.explore.grid.default_starts`); the lr
            slider is centred on what works from the first.

    Raises:
        ValueError: an unknown or non-2-D problem, an unknown optimizer, ``steps < 1``, or a start that
            is not two finite numbers inside the problem's window.
    """
    problem = explorable_problem(problem_name)
    classes = [get_optimizer_class(name) for name in optimizers]
    if not classes:
        raise ValueError(f"name at least one optimizer; known: {', '.join(optimizer_classes())}")
    steps = min(problem.budget_steps, STEPS_CAP) if steps is None else steps
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    points = default_starts(problem) if starts is None else checked_starts(problem, starts)
    explorer = Explorer(problem, points, steps)
    with training_threads():
        for cls in classes:
            started = time.process_time()
            sliders = averaging_sliders(cls)
            sliders.insert(0, lr_slider(problem, cls, sliders, explorer.starts[0], steps))
            paths = compute_paths(problem, cls, settings_of(sliders), explorer.starts, steps)
            seconds = time.process_time() - started
            explorer.optimizers.append(OptimizerPaths(cls.__name__, cls.reference, sliders, paths, seconds))
    return explorer


def quantise(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` in ``[low, high]`` as unsigned 16-bit steps (clipped): the page reads back
    ``low + step / 65535 * (high - low)``, within half a step of the value."""
    scaled = np.round((np.clip(values, low, high) - low) / (high - low) * _LEVELS)
    return scaled.astype("<u2")


def _base64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _best_lr(result: OptimizerPaths, problem: Problem) -> int:
    """The rate whose path from the first start (other sliders at their defaults) ends lowest."""
    shape = [len(s.values) for s in result.sliders]
    others = [s.default for s in result.sliders[1:]]
    rows = [np.ravel_multi_index([index, *others], shape) for index in range(shape[0])]
    return lowest_ending(problem, result.paths[rows, 0])


LOSS_DECADES = 15
"""Losses on a log scale are floored this many decades below the largest (a path that lands exactly on
a minimum has loss 0, whose logarithm no axis can show)."""


def loss_scale(losses: np.ndarray) -> tuple[bool, float, float]:
    """How the page stores losses: ``(log, low, high)``, in log10 units when ``log``.

    Log scale where no loss is negative (the usual case), floored :data:`LOSS_DECADES` below the
    largest; the plain value where the loss can be negative (the saddle).
    """
    if not losses.size:
        return False, 0.0, 1.0
    largest = float(losses.max())
    log = float(losses.min()) >= 0 and largest > 0
    if log:
        positive = losses[losses > 0]
        low, high = max(float(np.log10(positive.min())), np.log10(largest) - LOSS_DECADES), np.log10(largest)
    else:
        low, high = float(losses.min()), largest
    return log, float(low), float(max(high, low + 1e-9))


def _optimizer_entries(problem: Problem, explorer: Explorer) -> list[dict[str, Any]]:
    """Per optimizer: name, reference, sliders (opening on the best rate), its first path, its count."""
    entries, first = [], 0
    for result in explorer.optimizers:
        count = result.paths.shape[0] * result.paths.shape[1]
        sliders = [
            {"key": s.key, "label": s.label, "values": list(s.values), "default": s.default}
            for s in result.sliders
        ]
        sliders[0]["default"] = _best_lr(result, problem)
        entry = {"name": result.name, "reference": result.reference, "sliders": sliders}
        entries.append({**entry, "first": first, "count": count, "seconds": round(result.seconds, 2)})
        first += count
    return entries


def page_data(explorer: Explorer) -> dict[str, Any]:
    """The JSON the page reads: metadata plus base64 arrays of points, losses and path offsets.

    Paths are stored one after another (optimizers in order, then settings, then starts), each only
    as far as it was followed; ``offsets[i]`` is where path ``i`` begins.
    """
    problem = explorer.problem
    flat = np.concatenate([r.paths.reshape(-1, explorer.steps + 1, 2) for r in explorer.optimizers])
    valid = np.isfinite(flat).all(-1)  # a path is finite up to where it was stopped, NaN after
    points = flat[valid]
    losses = surface_values(problem, points)
    log, low, high = loss_scale(losses)
    shown = np.log10(np.maximum(losses, 10.0**low)) if log else losses
    window = extended_window(problem.bounds)
    xy = np.stack([quantise(points[:, axis], *window[axis]) for axis in (0, 1)], axis=-1)
    minima = [[x, y, float(surface_values(problem, np.array([x, y])))] for x, y in problem.minima]
    described = {"name": problem.name, "summary": problem.summary, "bounds": problem.bounds}
    return {
        "problem": {**described, "minima": minima, "optimum": problem.optimum, "axes": axis_names(problem)},
        "steps": explorer.steps,
        "starts": [list(start) for start in explorer.starts],
        "optimizers": _optimizer_entries(problem, explorer),
        "window": window,
        "loss": {"log": log, "low": low, "high": high},
        "offsets": _base64(np.concatenate([[0], np.cumsum(valid.sum(-1))]).astype("<u4")),
        "xy": _base64(xy),
        "losses": _base64(quantise(shown, low, high)),
    }


def axis_names(problem: Problem) -> list[str]:
    """``φ0, φ1`` for the textbook models' parameters, ``x, y`` for the 2-D test functions."""
    return ["φ0", "φ1"] if problem.kind == "model" else ["x", "y"]


def contour_image(problem: Problem) -> tuple[str, int, int]:
    """The problem's contours over exactly its window as a PNG data URI, with its pixel size."""
    (x_low, x_high), (y_low, y_high) = problem.bounds
    # keep the window's shape where the axes share units, within limits that keep the page usable
    ratio = min(1.0, max(0.45, (y_high - y_low) / (x_high - x_low)))
    width, height = PLOT_WIDTH, round(PLOT_WIDTH * ratio)
    figure = Figure(figsize=(width / 100, height / 100), dpi=100)
    axes = figure.add_axes((0, 0, 1, 1))
    draw_contours(axes, problem.function, problem.bounds)
    axes.set_axis_off()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"), width, height


def render_page(explorer: Explorer) -> str:
    """The page's HTML (one file: inline script and style, the data and the contour image)."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("descentlab.explore", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    image, width, height = contour_image(explorer.problem)
    data = page_data(explorer)
    return environment.get_template("explore.html.j2").render(
        data=data,
        image=image,
        width=width,
        height=height,
        explorer=explorer,
        paths=sum(o["count"] for o in data["optimizers"]),
    )


def write_explorer(path: str | Path, explorer: Explorer) -> Path:
    """Write the page to ``path`` atomically (creating its folder) and return it."""
    return write_text(path, render_page(explorer), parents=True)
