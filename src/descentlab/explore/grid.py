"""The slider grids of the explorer: which hyperparameters of an optimizer get a slider, over which values.

Sliders come from what the optimizer declares, never from its name: its constructor keywords and their
defaults (``inspect.signature``), its ``search_space`` for the range of ``lr``.

- ``lr``: :data:`LR_VALUES` values of the 1-2-5 ladder (..., 0.01, 0.02, 0.05, 0.1, ...) around the
  power of ten that ends lowest on this problem (:func:`best_decade`), so that the slider shows rates
  too small, right and too large for this problem (SGD opens on 0.002 on the raw-unit salary model and
  on 0.1 on the Gabor model).
- ``momentum``: :data:`MOMENTUM_VALUES`, for optimizers whose default momentum is not 0 (so plain SGD
  stays plain gradient descent; Momentum and Nesterov get the slider).
- ``betas``: two sliders, beta1 over :data:`MOMENTUM_VALUES` and beta2 over :data:`SQUARE_AVERAGE_VALUES`.
- ``alpha`` (RMSprop) and ``rho`` (Adadelta), the averaging weights of squared gradients:
  :data:`SQUARE_AVERAGE_VALUES`.

Every default of the optimizer is one of its slider's values (added to the list where it is missing),
and the page opens on it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
from torch.optim import Optimizer

from descentlab.explore.paths import compute_paths, surface_values
from descentlab.optim.registry import resolve_optimizer_class
from descentlab.problems.base import Problem

LR_VALUES = 8
"""Learning rates per optimizer: 8 rungs of the 1-2-5 ladder span 2.3 decades."""

MOMENTUM_VALUES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
"""Momentum and beta1: from none to a horizon of 100 steps (1 / (1 - beta))."""

SQUARE_AVERAGE_VALUES = (0.9, 0.99, 0.999)
"""beta2, RMSprop's alpha and Adadelta's rho: horizons of 10, 100 and 1000 steps."""

START_FRACTIONS = ((0.2, 0.8), (0.8, 0.8), (0.8, 0.2))
"""Starts besides the problem's own, as fractions of its window (x from the left, y from the bottom)."""

LR_FLOOR_EXPONENT = -10
"""The smallest rate the scan tries is 1e-10: far below what the registered problems need, for steep
surfaces (a problem whose loss is scaled by 1e6 needs rates 1e6 times smaller)."""


@dataclass(frozen=True)
class Slider:
    """One slider: the hyperparameter it sets, its label, its values and the value the page opens on.

    Attributes:
        key: the constructor keyword (``lr``, ``momentum``, ``alpha``), or ``betas[0]`` / ``betas[1]``.
        label: what the page shows (``learning rate``, ``β1``).
        values: the grid, in increasing order.
        default: the index in ``values`` the page opens on.
    """

    key: str
    label: str
    values: tuple[float, ...]
    default: int


_LABELS = {
    "lr": "learning rate",
    "momentum": "momentum β",
    "betas[0]": "β1",
    "betas[1]": "β2",
    "alpha": "α (RMSprop)",
    "rho": "ρ (Adadelta)",
}


def constructor_defaults(cls: type[Optimizer]) -> dict[str, Any]:
    """The keyword defaults of ``cls``'s constructor."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _with_default(values: Sequence[float], default: float, key: str) -> Slider:
    merged = tuple(sorted({*values, float(default)}))
    return Slider(key, _LABELS[key], merged, merged.index(float(default)))


def averaging_sliders(cls: type[Optimizer]) -> list[Slider]:
    """The sliders of ``cls`` other than ``lr`` (see the module docstring)."""
    defaults = constructor_defaults(cls)
    sliders = []
    if defaults.get("momentum"):
        sliders.append(_with_default(MOMENTUM_VALUES, defaults["momentum"], "momentum"))
    betas = defaults.get("betas")
    if isinstance(betas, tuple) and len(betas) == 2:
        sliders.append(_with_default(MOMENTUM_VALUES, betas[0], "betas[0]"))
        sliders.append(_with_default(SQUARE_AVERAGE_VALUES, betas[1], "betas[1]"))
    for key in ("alpha", "rho"):
        if isinstance(defaults.get(key), float):
            sliders.append(_with_default(SQUARE_AVERAGE_VALUES, defaults[key], key))
    return sliders


def settings_of(sliders: Sequence[Slider], indices: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Hyperparameters of every combination of slider values (the last slider varying fastest), or of
    the one combination ``indices``; ``betas[0]`` and ``betas[1]`` are joined into ``betas``."""
    combinations = (
        product(*(s.values for s in sliders))
        if indices is None
        else [tuple(s.values[i] for s, i in zip(sliders, indices))]
    )
    settings = []
    for values in combinations:
        setting = {s.key: value for s, value in zip(sliders, values)}
        if "betas[0]" in setting:
            setting["betas"] = (setting.pop("betas[0]"), setting.pop("betas[1]"))
        settings.append(setting)
    return settings


def ladder(low_exponent: int, high: float) -> list[float]:
    """The 1-2-5 ladder from ``10**low_exponent`` up to ``high`` (inclusive), increasing."""
    values = []
    for exponent in range(low_exponent, math.floor(math.log10(high)) + 1):
        for mantissa in (1, 2, 5):
            value = float(f"{mantissa}e{exponent}")
            if value <= high * (1 + 1e-9):
                values.append(value)
    return values


def lr_ceiling(cls: type[Optimizer]) -> float:
    """The top of the optimizer's ``search_space`` range for ``lr`` (10 when it declares none)."""
    for dimension in getattr(cls, "search_space", ()):
        if getattr(dimension, "name", None) == "lr":
            return float(dimension.high)
    return 10.0


def best_decade(
    problem: Problem,
    optimizer: str | type[Optimizer],
    sliders: Sequence[Slider],
    start: tuple[float, float],
    steps: int,
) -> float:
    """The power of ten up to :func:`lr_ceiling` whose path from ``start`` (``steps`` steps, every other
    slider at its default) ends with the lowest loss; among equal losses the larger rate.

    A path that was stopped (left the extended window, overflowed) counts as infinitely bad.
    """
    cls = resolve_optimizer_class(optimizer)
    others = settings_of(sliders, [s.default for s in sliders])[0]
    decades = [value for value in ladder(LR_FLOOR_EXPONENT, lr_ceiling(cls)) if f"{value:e}".startswith("1")]
    paths = compute_paths(problem, cls, [{**others, "lr": lr} for lr in decades], [start], steps)[:, 0]
    return decades[lowest_ending(problem, paths)]


def lowest_ending(problem: Problem, paths: np.ndarray) -> int:
    """Index of the path (``paths`` is ``(rates, steps + 1, 2)``, by increasing rate) that ends with the
    lowest loss, the last of equal ones; a path that was stopped before its last step never wins
    unless all were."""
    finished = np.isfinite(paths[:, -1]).all(-1)
    finals = np.where(finished, surface_values(problem, np.nan_to_num(paths[:, -1])), np.inf)
    # reversed: argmin takes the first of equal values, and equal losses should go to the larger rate
    return len(finals) - 1 - int(np.argmin(finals[::-1]))


def lr_slider(
    problem: Problem,
    optimizer: str | type[Optimizer],
    sliders: Sequence[Slider],
    start: tuple[float, float],
    steps: int,
) -> Slider:
    """:data:`LR_VALUES` rungs of the 1-2-5 ladder around :func:`best_decade`: four rungs below it (too
    slow), three above (too fast); the page opens on the best of them (see the page)."""
    best = best_decade(problem, optimizer, sliders, start, steps)
    rungs = ladder(LR_FLOOR_EXPONENT - 2, 1000 * best)
    position = min(range(len(rungs)), key=lambda i: abs(math.log(rungs[i] / best)))
    below = LR_VALUES // 2
    values = tuple(rungs[max(0, position - below) : position - below + LR_VALUES])
    return Slider("lr", _LABELS["lr"], values, values.index(rungs[position]))


MAX_STARTS = 8
"""Each start multiplies the paths (and the page size): the default page has 4."""


def checked_starts(problem: Problem, starts: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """``starts`` as tuples of floats, each two finite numbers inside the problem's window, 1 to
    :data:`MAX_STARTS` of them; anything else is a ``ValueError`` saying which start and why."""
    if not 1 <= len(starts) <= MAX_STARTS:
        raise ValueError(f"give 1 to {MAX_STARTS} start points, got {len(starts)}")
    (x_low, x_high), (y_low, y_high) = problem.bounds
    checked = []
    for start in starts:
        point = tuple(float(value) for value in start)
        if len(point) != 2 or not all(math.isfinite(value) for value in point):
            raise ValueError(f"a start point is two finite numbers x,y; got {start!r}")
        if not (x_low <= point[0] <= x_high and y_low <= point[1] <= y_high):
            raise ValueError(
                f"start ({point[0]:g}, {point[1]:g}) lies outside the window of {problem.name!r}, "
                f"[{x_low:g}, {x_high:g}] x [{y_low:g}, {y_high:g}]; choose a start inside it"
            )
        checked.append(point)
    return checked


def default_starts(problem: Problem) -> list[tuple[float, float]]:
    """The problem's own start, then one start at each of :data:`START_FRACTIONS` of its window."""
    (x_low, x_high), (y_low, y_high) = problem.bounds
    own = tuple(float(value) for value in problem.start) if problem.start is not None else None
    starts = [] if own is None else [own]
    for fx, fy in START_FRACTIONS:
        starts.append((round(x_low + fx * (x_high - x_low), 6), round(y_low + fy * (y_high - y_low), 6)))
    return starts
