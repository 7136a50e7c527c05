"""2-D test functions with known minima, and their noisy-gradient versions.

Each function maps a ``(..., 2)`` tensor to a ``(...)`` tensor in closed form; gradients come from
autograd on that closed form. A task holds one parameter of shape ``(2,)`` started at the function's
``start`` and evaluates to ``{"loss": f(x), "distance": distance to the nearest known minimum}``.

The plain functions are deterministic (:attr:`~descentlab.problems.base.Problem.deterministic`): seed 0
starts at the canonical ``start`` and seed ``k > 0`` at
:func:`~descentlab.problems.seeding.perturbed_start` (a normal offset of 5 % of the window width per
axis, clamped into the window). Their ``epoch_batches`` is the single full batch ``[None]``.

The noisy versions add zero-mean Gaussian noise to the gradient only (the reported loss stays
``f(x)``); the noise is drawn per step from a generator seeded by the task seed, so every optimizer
sees the same noise sequence for the same seed. The noisy versions keep the canonical start for every
seed and have no finite training set (``epoch_batches`` is ``None``), so SVRG cannot run on them.

References:
    Rosenbrock, H. H. "An automatic method for finding the greatest or least value of a function",
    The Computer Journal 3(3), 1960. Beale, E. M. L. "On an iterative method for finding a local
    minimum of a function of more than one variable", 1958. Himmelblau, D. M. "Applied Nonlinear
    Programming", 1972. Rastrigin, L. A. "Systems of extremal control", 1974. Surjanovic & Bingham,
    "Virtual Library of Simulation Experiments", https://www.sfu.ca/~ssurjano/optimization.html
    (minima and usual domains). The bowl and its start are those of the optimizer comparison in
    Saito, "Deep Learning from Scratch" (O'Reilly Japan, 2016), section 6.1, which runs 30 steps of
    SGD (lr 0.95), Momentum (0.1), AdaGrad (1.5) and Adam (0.3). The ravine is that bowl made ten times
    flatter along x (Hessian eigenvalues 0.01 and 2), ill-conditioned enough for the contrast between
    plain, normalized and adaptive steps that Prince, *Understanding Deep Learning* (2023), sec. 6.4
    draws in fig. 6.9 (the book's own surface there has a curvature ratio of 16).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from descentlab.problems.base import Problem, Task
from descentlab.problems.fingerprints import fingerprint_values
from descentlab.problems.registry import register
from descentlab.problems.seeding import noise_generator, perturbed_start


def bowl(point: torch.Tensor) -> torch.Tensor:
    """Anisotropic bowl ``f(x, y) = x^2 / 20 + y^2``; minimum 0 at the origin (condition number 20)."""
    x, y = point[..., 0], point[..., 1]
    return x**2 / 20 + y**2


RAVINE_CURVATURES = (1 / 100, 2.0)
"""Hessian eigenvalues of :func:`ravine` (along x, along y): a ratio of 200."""


def ravine(point: torch.Tensor) -> torch.Tensor:
    """Ill-conditioned bowl ``f(x, y) = x^2 / 200 + y^2``; minimum 0 at the origin.

    The Hessian is ``diag(1/100, 2)`` everywhere: curvature 200 times larger along y than along x, so a
    gradient step small enough to be stable along y (``lr < 2 / 2 = 1``) shrinks x by at most 1 % a step.
    """
    x, y = point[..., 0], point[..., 1]
    return x**2 / 200 + y**2


def rosenbrock(point: torch.Tensor) -> torch.Tensor:
    """Rosenbrock ``f(x, y) = (1 - x)^2 + 100 (y - x^2)^2``; minimum 0 at ``(1, 1)``."""
    x, y = point[..., 0], point[..., 1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def beale(point: torch.Tensor) -> torch.Tensor:
    """Beale ``f = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2``; minimum 0 at (3, 0.5)."""
    x, y = point[..., 0], point[..., 1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def himmelblau(point: torch.Tensor) -> torch.Tensor:
    """Himmelblau ``f = (x^2 + y - 11)^2 + (x + y^2 - 7)^2``; four minima, all with value 0."""
    x, y = point[..., 0], point[..., 1]
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def rastrigin(point: torch.Tensor) -> torch.Tensor:
    """Rastrigin ``f = 20 + sum_i (x_i^2 - 10 cos(2 pi x_i))``; global minimum 0 at the origin.

    Local minima sit close to every integer lattice point, so descent methods usually stop in one.
    """
    return 20 + (point**2 - 10 * torch.cos(2 * math.pi * point)).sum(dim=-1)


def saddle(point: torch.Tensor) -> torch.Tensor:
    """Saddle ``f(x, y) = x^2 - y^2``: a stationary point at the origin and no minimum."""
    x, y = point[..., 0], point[..., 1]
    return x**2 - y**2


# Himmelblau's three minima other than (3, 2) have no simple closed form; these are the roots of the
# gradient to double precision (Newton's method from the published 6-digit values).
_HIMMELBLAU_MINIMA = (
    (3.0, 2.0),
    (-2.805118086952745, 3.131312518250573),
    (-3.779310253377747, -3.283185991286170),
    (3.584428340330492, -1.848126526964404),
)


@dataclass(frozen=True)
class Function2D:
    """A 2-D test function with everything a problem needs to know about it.

    Attributes:
        name: registry name.
        summary: one line for ``descentlab problems``.
        formula: the closed form, vectorised over ``(..., 2)``.
        bounds: plotting window ``((x_min, x_max), (y_min, y_max))``.
        minima: known minimisers (empty when the function has none).
        optimum: the minimum value (``None`` when unbounded below).
        start: initial point.
        budget_steps: default step budget.
        target: loss value that counts as reached.
        noise_std: standard deviation of the gradient noise of the ``noisy-`` version.
        formula_version: bump when ``formula`` changes, so that data fingerprints change with it.
    """

    name: str
    summary: str
    formula: Callable[[torch.Tensor], torch.Tensor]
    bounds: tuple[tuple[float, float], tuple[float, float]]
    minima: tuple[tuple[float, float], ...]
    optimum: float | None
    start: tuple[float, float]
    budget_steps: int
    target: float
    noise_std: float
    formula_version: int = 1


FUNCTIONS: tuple[Function2D, ...] = (
    Function2D(
        "bowl", "anisotropic bowl x^2/20 + y^2 from (-7, 2) (Saito, Deep Learning from Scratch, ch. 6)", bowl,
        ((-10.0, 10.0), (-4.0, 4.0)), ((0.0, 0.0),), 0.0, (-7.0, 2.0), 200, 1e-3, 0.5,
    ),
    Function2D(
        "ravine", "ill-conditioned bowl x^2/200 + y^2 from (-7, 2), Hessian eigenvalues 0.01 and 2", ravine,
        ((-10.0, 10.0), (-4.0, 4.0)), ((0.0, 0.0),), 0.0, (-7.0, 2.0), 300, 1e-3, 0.5,
    ),
    Function2D(
        "rosenbrock", "Rosenbrock's banana valley, minimum at (1, 1)", rosenbrock,
        ((-2.0, 2.0), (-1.0, 3.0)), ((1.0, 1.0),), 0.0, (-1.2, 1.0), 1000, 1e-3, 2.0,
    ),
    Function2D(
        "beale", "Beale's function, flat plateaus and sharp ridges, minimum at (3, 0.5)", beale,
        ((-4.5, 4.5), (-4.5, 4.5)), ((3.0, 0.5),), 0.0, (1.0, 1.5), 500, 1e-3, 2.0,
    ),
    Function2D(
        "himmelblau", "Himmelblau's function, four minima of value 0", himmelblau,
        ((-5.0, 5.0), (-5.0, 5.0)), _HIMMELBLAU_MINIMA, 0.0, (0.0, 0.0), 300, 1e-3, 5.0,
    ),
    Function2D(
        "rastrigin", "Rastrigin's function, a lattice of local minima around the global one at 0",
        rastrigin, ((-5.12, 5.12), (-5.12, 5.12)), ((0.0, 0.0),), 0.0, (2.2, -1.7), 300, 0.5, 5.0,
    ),
    Function2D(
        "saddle", "saddle x^2 - y^2 started next to the saddle point; target: escape to f <= -1",
        saddle, ((-2.0, 2.0), (-2.0, 2.0)), (), None, (1.0, 1e-3), 100, -1.0, 0.1,
    ),
)  # fmt: skip


class PointModel(nn.Module):
    """A module holding a single point ``(x, y)`` as its only parameter, for 2-D problems."""

    def __init__(self, start: tuple[float, float]) -> None:
        super().__init__()
        self.point = nn.Parameter(torch.tensor(start, dtype=torch.get_default_dtype()))

    def forward(self) -> torch.Tensor:
        """Return the current point."""
        return self.point


def nearest_minimum_distance(point: torch.Tensor, minima: tuple[tuple[float, float], ...]) -> float:
    """Euclidean distance from ``point`` (shape ``(2,)``) to the closest of ``minima``."""
    if not minima:
        raise ValueError("distance to the nearest minimum needs at least one known minimum, got none")
    known = torch.tensor(minima, dtype=point.dtype)
    return float(torch.linalg.vector_norm(known - point.detach(), dim=-1).min())


def add_gradient_noise(value: torch.Tensor, point: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Return ``value`` unchanged in value but with ``noise`` added to its gradient wrt ``point``.

    ``point - point.detach()`` is exactly zero, so the loss value is untouched while autograd sees
    an extra ``<point, noise>`` term whose gradient is ``noise``.
    """
    return value + ((point - point.detach()) * noise).sum()


def function_task(function: Function2D, seed: int, batch_size: int | None, noise_std: float = 0.0) -> Task:
    """Build the task of ``function``; with ``noise_std > 0`` the gradient gets N(0, noise_std^2) noise.

    Args:
        function: the test function.
        seed: with noise, seeds the noise (the start is the function's); without noise, seeds the start
            (:func:`~descentlab.problems.seeding.perturbed_start`; seed 0 is the function's start).
        batch_size: must be ``None``: 2-D functions are full-batch.
        noise_std: standard deviation of the per-coordinate gradient noise (0 for exact gradients).
    """
    if batch_size is not None:
        raise ValueError(
            f"problem {function.name!r} is a full-batch 2-D function; "
            f"batch_size must be None, got {batch_size}"
        )
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std}")
    if noise_std > 0:
        model = PointModel(function.start)
        generator = noise_generator(seed)
        batches = (noise_std * torch.randn(2, generator=generator) for _ in itertools.count())
        epoch_batches = None
    else:
        model = PointModel(perturbed_start(function.start, function.bounds, seed))
        batches = itertools.repeat(None)

        def epoch_batches() -> list[None]:
            return [None]

    def loss(noise: torch.Tensor | None) -> torch.Tensor:
        value = function.formula(model.point)
        if noise is None:
            return value
        return add_gradient_noise(value, model.point, noise.to(model.point.dtype))

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            metrics = {"loss": float(function.formula(model.point))}
        if function.minima:
            metrics["distance"] = nearest_minimum_distance(model.point, function.minima)
        else:
            # Without a minimum, the useful distance is how far the iterate got from the saddle point.
            metrics["distance_to_saddle"] = float(torch.linalg.vector_norm(model.point.detach()))
        return metrics

    return Task(
        model=model,
        batches=batches,
        loss=loss,
        evaluate=evaluate,
        steps_per_epoch=1,
        epoch_batches=epoch_batches,
    )


def function_problem(function: Function2D, noisy: bool = False, tags: tuple[str, ...] = ()) -> Problem:
    """The :class:`Problem` for ``function``; ``noisy=True`` gives the ``noisy-<name>`` version."""
    noise_std = function.noise_std if noisy else 0.0

    def make_task(seed: int, batch_size: int | None) -> Task:
        return function_task(function, seed, batch_size, noise_std)

    def data_fingerprint() -> str:
        formula = function.formula
        identity = f"{formula.__module__}.{formula.__qualname__}"
        return fingerprint_values(
            identity, function.formula_version, function.start, function.bounds, noise_std
        )

    summary = f"{function.summary}; gradient + N(0, {noise_std:g}^2) noise" if noisy else function.summary
    return Problem(
        name=f"noisy-{function.name}" if noisy else function.name,
        summary=summary,
        kind="function2d",
        make_task=make_task,
        budget_steps=function.budget_steps,
        metric="loss",
        higher_is_better=False,
        target=function.target,
        optimum=function.optimum,
        function=function.formula,
        bounds=function.bounds,
        minima=function.minima,
        start=function.start,
        tags=(*tags, "noisy") if noisy else tags,
        deterministic=not noisy,
        data_fingerprint=data_fingerprint,
    )


# The default comparison: the textbook bowl plus the classic hard cases.
_DEFAULT_SET = {"bowl", "rosenbrock", "beale", "himmelblau"}

for _function in FUNCTIONS:
    register(
        function_problem(_function, tags=("2d", "default") if _function.name in _DEFAULT_SET else ("2d",))
    )
for _function in FUNCTIONS:
    if _function.name != "saddle":
        register(function_problem(_function, noisy=True, tags=("2d",)))
