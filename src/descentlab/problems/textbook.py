"""The textbook models of Prince, *Understanding Deep Learning* (2023), chapters 2 and 6.

Three least-squares fits of two parameters ``phi = (phi0, phi1)``, so each also exposes its loss
surface over ``(phi0, phi1)`` as ``Problem.function`` with plotting bounds and its minima:

* ``linear-regression``: ``f(x) = phi0 + phi1 x`` on the 12 points of UDL notebook 6.1
  (``Notebooks/Chap06/6_1_Line_Search.ipynb`` and 6.2), started at ``(0.6, -0.2)`` as there.
* ``gabor``: ``f(x) = sin(phi0 + 0.06 phi1 x) exp(-(phi0 + 0.06 phi1 x)^2 / 32)`` (UDL eq. 6.8,
  fig. 6.4) on the 30 points the book's notebooks 6.2, 6.3 and 9.1 ship, started at
  ``(-1.5, 8.5)`` as notebook 6.3 does. The notebooks give the data as fixed numbers (noisy samples
  of a Gabor curve), not as a generator, so we use those numbers exactly; the loss at
  ``(0.6, -0.2)`` is 16.419, the value notebook 6.2 prints as "Correct loss".
* ``salary``: a single linear unit predicting salary from years of experience on five people
  (5, 3, 8, 1.4, 10.1 years -> 5500, 2300, 7600, 1800, 11400), in raw units on purpose: the loss
  surface is badly conditioned (curvatures differ by ~10^3), which is what the example teaches.

The loss is the book's sum of squared residuals ``L(phi) = sum_i (f(x_i, phi) - y_i)^2`` (UDL
eq. 2.5). With a ``batch_size`` the task draws minibatches and scales their sum by ``N / B`` so
that the minibatch loss is an unbiased estimate of the full loss (UDL section 6.2). The model option
``order`` chooses how minibatches come: ``"shuffled"`` (default: reshuffled every epoch by the seed) or
``"data"`` (the stored order, every epoch the same), which is how textbook procedures that update per
sample in data order run (the salary linear unit's 10 passes). The model option ``start`` (a point
``(phi0, phi1)``) replaces the book's start, so that paths from several starts can be compared.

The three are deterministic (:attr:`~descentlab.problems.base.Problem.deterministic`): seed 0 starts at
the book's start above and seed ``k > 0`` at :func:`~descentlab.problems.seeding.perturbed_start`
(a normal offset of 5 % of the plotting-window width per axis, clamped into the window); with a
``batch_size`` the seed also orders the minibatches. ``epoch_batches`` is the full batch, or with a
``batch_size`` the data in stored order as minibatches of that size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from descentlab.problems.base import OptionDomain, Problem, Task
from descentlab.problems.fingerprints import fingerprint_values
from descentlab.problems.functions2d import PointModel, nearest_minimum_distance
from descentlab.problems.registry import register
from descentlab.problems.seeding import (
    batches_in_order,
    batches_per_epoch,
    order_generator,
    perturbed_start,
    shuffled_batches,
)

LINEAR_X = (0.03, 0.19, 0.34, 0.46, 0.78, 0.81, 1.08, 1.18, 1.39, 1.60, 1.65, 1.90)
LINEAR_Y = (0.67, 0.85, 1.05, 1.00, 1.40, 1.50, 1.30, 1.54, 1.55, 1.68, 1.73, 1.60)

GABOR_X = (
    -1.920e00, -1.422e01, 1.490e00, -1.940e00, -2.389e00, -5.090e00, -8.861e00, 3.578e00, -6.010e00,
    -6.995e00, 3.634e00, 8.743e-01, -1.096e01, 4.073e-01, -9.467e00, 8.560e00, 1.062e01, -1.729e-01,
    1.040e01, -1.261e01, 1.574e-01, -1.304e01, -2.156e00, -1.210e01, -1.119e01, 2.902e00, -8.220e00,
    -1.179e01, -8.391e00, -4.505e00,
)  # fmt: skip
GABOR_Y = (
    -1.051e00, -2.482e-02, 8.896e-01, -4.943e-01, -9.371e-01, 4.306e-01, 9.577e-03, -7.944e-02, 1.624e-01,
    -2.682e-01, -3.129e-01, 8.303e-01, -2.365e-02, 5.098e-01, -2.777e-01, 3.367e-01, 1.927e-01, -2.222e-01,
    6.352e-02, 6.888e-03, 3.224e-02, 1.091e-02, -5.706e-01, -5.258e-02, -3.666e-02, 1.709e-01, -4.805e-02,
    2.008e-01, -1.904e-01, 5.952e-01,
)  # fmt: skip

# Every minimum of the Gabor loss inside GABOR_BOUNDS, global first, found by BFGS from a 21 x 21
# grid of starts over the bounds and polished by root-finding on the gradient (float64, scipy);
# tests/problems check each is a stationary point with a positive definite Hessian.
GABOR_MINIMA = (
    (0.0037946356109375377, 16.026347827141723),
    (-5.819376101839457, 13.82450392762743),
    (6.559354269534794, 18.348855285164024),
    (-6.443223114287746, 4.967533652863323),
    (6.307961387848067, 13.515787336909765),
    (6.084736300064385, 4.011774525983753),
    (6.171313163078898, 8.088135558848837),
    (-0.16646565055321266, 4.8809327482639455),
)
GABOR_OPTIMUM = 0.6456961253674638
GABOR_BOUNDS = ((-10.0, 10.0), (2.5, 22.5))  # the window of UDL notebook 6.2's loss plots

SALARY_YEARS = (5.0, 3.0, 8.0, 1.4, 10.1)
SALARY = (5500.0, 2300.0, 7600.0, 1800.0, 11400.0)

ORDERS = ("shuffled", "data")
"""Minibatch orders of the least-squares tasks (model option ``order``)."""


def canonical_start(value: Any) -> tuple[float, float] | None:
    """``None`` (the book's start) or a point of two finite numbers, as a tuple of floats."""
    if value is None:
        return None
    point = tuple(float(coordinate) for coordinate in value)
    if len(point) != 2 or not all(math.isfinite(coordinate) for coordinate in point):
        raise ValueError(f"start must be two finite numbers (phi0, phi1), got {value!r}")
    return point


def canonical_order(value: Any) -> str:
    """``"shuffled"`` or ``"data"``; anything else is an error naming both."""
    if value not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {value!r}")
    return value


def line(phi: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Straight line ``phi0 + phi1 x``; ``phi`` is ``(..., 2)``, ``x`` is ``(N,)``, result ``(..., N)``."""
    return phi[..., 0:1] + phi[..., 1:2] * x


def gabor(phi: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Gabor model ``sin(z) exp(-z^2 / 32)`` with ``z = phi0 + 0.06 phi1 x`` (UDL eq. 6.8)."""
    z = phi[..., 0:1] + 0.06 * phi[..., 1:2] * x
    return torch.sin(z) * torch.exp(-(z**2) / 32)


Predictor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sum_of_squares(predict: Predictor, x: torch.Tensor, y: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Least-squares loss ``sum_i (predict(phi, x_i) - y_i)^2``, vectorised over ``phi``'s leading dims."""
    x = x.to(phi.dtype)
    return ((predict(phi, x) - y.to(phi.dtype)) ** 2).sum(dim=-1)


def line_least_squares(x: torch.Tensor, y: torch.Tensor) -> tuple[tuple[float, float], float]:
    """Closed-form least-squares line: ``phi1 = cov(x, y) / var(x)``, ``phi0 = mean(y) - phi1 mean(x)``.

    Returns the minimiser ``(phi0, phi1)`` and the minimum sum of squared residuals.
    """
    x, y = x.double(), y.double()
    dx, dy = x - x.mean(), y - y.mean()
    slope = (dx * dy).sum() / (dx * dx).sum()
    intercept = y.mean() - slope * x.mean()
    residual = ((intercept + slope * x - y) ** 2).sum()
    return (float(intercept), float(slope)), float(residual)


def least_squares_task(
    predict: Predictor,
    x: torch.Tensor,
    y: torch.Tensor,
    start: tuple[float, float],
    minima: tuple[tuple[float, float], ...],
    seed: int,
    batch_size: int | None,
    bounds: tuple[tuple[float, float], tuple[float, float]] | None = None,
    order: str = "shuffled",
) -> Task:
    """A task fitting ``phi`` (a :class:`PointModel`) by least squares.

    ``phi`` starts at ``start`` for seed 0 and, when ``bounds`` are given, at
    :func:`~descentlab.problems.seeding.perturbed_start` for seeds ``k > 0``. Full batch when
    ``batch_size`` is ``None``; otherwise minibatches (reshuffled by the seed each epoch, or with
    ``order="data"`` in stored order) whose summed loss is scaled by ``N / B``. ``evaluate`` gives the
    full-data ``loss`` and the ``distance`` to the nearest of ``minima``.
    """
    model = PointModel(perturbed_start(start, bounds, seed) if bounds is not None else start)
    count = len(x)
    if batch_size is None:
        batches = iter(lambda: (x, y), None)
        steps_per_epoch = 1
        epoch = [(x, y)]
    else:
        if not 1 <= batch_size <= count:
            raise ValueError(
                f"batch_size must be in [1, {count}] for this {count}-point data set, got {batch_size}"
            )
        steps_per_epoch = batches_per_epoch(count, batch_size)
        epoch = batches_in_order(x, y, batch_size)
        if canonical_order(order) == "data":
            batches = itertools.cycle(epoch)
        else:
            batches = shuffled_batches(x, y, batch_size, order_generator(seed))

    def loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        batch_x, batch_y = batch
        return sum_of_squares(predict, batch_x, batch_y, model.point) * (count / len(batch_x))

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            value = float(sum_of_squares(predict, x, y, model.point))
        return {"loss": value, "distance": nearest_minimum_distance(model.point, minima)}

    return Task(
        model=model,
        batches=batches,
        loss=loss,
        evaluate=evaluate,
        steps_per_epoch=steps_per_epoch,
        epoch_batches=lambda: list(epoch),
    )


def least_squares_problem(
    name: str,
    summary: str,
    predict: Predictor,
    x: tuple[float, ...],
    y: tuple[float, ...],
    start: tuple[float, float],
    minima: tuple[tuple[float, float], ...],
    optimum: float,
    bounds: tuple[tuple[float, float], tuple[float, float]],
    budget_steps: int,
    target: float,
    tags: tuple[str, ...],
) -> Problem:
    """Describe a two-parameter least-squares fit as a ``model`` problem with its loss surface."""
    data_x = torch.tensor(x, dtype=torch.float64)
    data_y = torch.tensor(y, dtype=torch.float64)

    book_start = start  # the option of the same name may replace it

    def make_task(seed: int, batch_size: int | None, order: str, start: tuple[float, float] | None) -> Task:
        first = book_start if start is None else canonical_start(start)
        return least_squares_task(predict, data_x, data_y, first, minima, seed, batch_size, bounds, order)

    def data_fingerprint() -> str:
        return fingerprint_values(predict.__name__, data_x, data_y, start, bounds)

    return Problem(
        name=name,
        summary=summary,
        kind="model",
        make_task=make_task,
        budget_steps=budget_steps,
        metric="loss",
        higher_is_better=False,
        target=target,
        optimum=optimum,
        function=partial(sum_of_squares, predict, data_x, data_y),
        bounds=bounds,
        minima=minima,
        start=start,
        tags=tags,
        deterministic=True,
        data_fingerprint=data_fingerprint,
        options={"order": "shuffled", "start": None},
        option_domains={
            "order": OptionDomain("shuffled or data", canonical_order),
            "start": OptionDomain("two numbers (phi0, phi1)", canonical_start),
        },
    )


_linear_minimum, _linear_optimum = line_least_squares(
    torch.tensor(LINEAR_X, dtype=torch.float64), torch.tensor(LINEAR_Y, dtype=torch.float64)
)
_salary_minimum, _salary_optimum = line_least_squares(
    torch.tensor(SALARY_YEARS, dtype=torch.float64), torch.tensor(SALARY, dtype=torch.float64)
)

register(
    least_squares_problem(
        "linear-regression", "1-D linear regression phi0 + phi1 x, 12 points (UDL notebook 6.1)",
        line, LINEAR_X, LINEAR_Y, start=(0.6, -0.2), minima=(_linear_minimum,), optimum=_linear_optimum,
        bounds=((0.0, 2.0), (-1.0, 1.0)), budget_steps=200, target=_linear_optimum + 1e-3,
        tags=("textbook",),
    )
)  # fmt: skip
register(
    least_squares_problem(
        "gabor", "Gabor model fitted to 30 points, one global and 7 local minima (UDL fig. 6.4)",
        gabor, GABOR_X, GABOR_Y, start=(-1.5, 8.5), minima=GABOR_MINIMA, optimum=GABOR_OPTIMUM,
        # 0.7 lies below every local minimum (the best is 3.36): reaching it means the global basin.
        bounds=GABOR_BOUNDS, budget_steps=300, target=0.7, tags=("textbook", "default"),
    )
)  # fmt: skip
register(
    least_squares_problem(
        "salary", "single linear unit: salary from years of experience, 5 people, raw units",
        line, SALARY_YEARS, SALARY, start=(0.0, 0.0), minima=(_salary_minimum,), optimum=_salary_optimum,
        bounds=((-3000.0, 3000.0), (0.0, 2000.0)), budget_steps=1000, target=1.01 * _salary_optimum,
        tags=("textbook",),
    )
)  # fmt: skip
