"""Loss landscapes: the loss along a line between two parameter vectors and over a 2-D slice.

Both evaluate ``loss_fn()`` (a zero-argument closure over fixed data, as for
:class:`~descentlab.analysis.hessian.HessianOperator`) at many parameter vectors, under
``torch.no_grad()``, and put every parameter and buffer of the model back bit for bit afterwards, even
on error or interrupt. The model's train/eval mode is left to the caller: use ``model.eval()`` for
batch-norm or dropout models unless you mean to see the training-mode loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm

from descentlab.analysis.directions import OneDimensionalRule, filter_normalized_direction
from descentlab.analysis.hessian import LossClosure
from descentlab.analysis.parameter_vector import (
    assign_parameter_vector,
    parameter_vector,
    restored_model_state,
)


@dataclass(frozen=True)
class EvaluationCost:
    """What a landscape will cost: the number of loss evaluations and the time it should take."""

    evaluations: int
    seconds_per_evaluation: float

    @property
    def estimated_seconds(self) -> float:
        """``evaluations * seconds_per_evaluation``."""
        return self.evaluations * self.seconds_per_evaluation

    def __str__(self) -> str:
        return (
            f"{self.evaluations} loss evaluations, about {self.estimated_seconds:.1f} s "
            f"(one evaluation took {1000 * self.seconds_per_evaluation:.2f} ms)"
        )


def _timed_loss(loss_fn: LossClosure) -> tuple[float, float]:
    started = time.perf_counter()
    with torch.no_grad():
        loss = float(loss_fn())
    return loss, time.perf_counter() - started


def _evaluate_at(model: nn.Module, loss_fn: LossClosure, vector: torch.Tensor) -> float:
    assign_parameter_vector(model, vector)
    with torch.no_grad():
        return float(loss_fn())


@dataclass
class Interpolation:
    """The loss along :math:`\\theta(\\alpha) = (1 - \\alpha)\\,\\theta_a + \\alpha\\,\\theta_b`."""

    alphas: torch.Tensor
    losses: torch.Tensor


def interpolate_1d(
    model: nn.Module,
    loss_fn: LossClosure,
    start: torch.Tensor,
    end: torch.Tensor,
    alphas: torch.Tensor | None = None,
    points: int = 51,
    progress: bool = True,
) -> Interpolation:
    """Loss along the line from ``start`` (alpha 0) to ``end`` (alpha 1), two flat parameter vectors.

    The points are ``(1 - alpha) * start + alpha * end``, so alpha 0 and 1 give the two vectors exactly.
    Pass ``alphas`` (e.g. ``torch.linspace(-0.5, 1.5, 81)``) to look beyond the endpoints, as in
    Goodfellow et al. (2015), "Qualitatively characterizing neural network optimization problems".
    """
    if alphas is None:
        if points < 2:
            raise ValueError(f"points must be >= 2, got {points}")
        alphas = torch.linspace(0, 1, points, dtype=torch.float64)
    alphas = torch.as_tensor(alphas, dtype=torch.float64).reshape(-1)
    device = parameter_vector(model).device
    start, end = start.detach().to(device, torch.float64), end.detach().to(device, torch.float64)
    if start.shape != end.shape:
        raise ValueError(
            f"start and end must have the same shape, got {tuple(start.shape)} and {tuple(end.shape)}"
        )
    losses = []
    with restored_model_state(model):
        for alpha in tqdm(alphas.tolist(), desc="interpolation", disable=None if progress else True):
            losses.append(_evaluate_at(model, loss_fn, (1 - alpha) * start + alpha * end))
    return Interpolation(alphas=alphas, losses=torch.tensor(losses, dtype=torch.float64))


@dataclass
class LossSurface:
    """Loss over the plane :math:`\\theta_c + x\\,d_1 + y\\,d_2`; ``losses[j, i]`` is at ``(xs[i], ys[j])``.

    ``cost`` is the cost announced before the grid started.
    """

    xs: torch.Tensor
    ys: torch.Tensor
    losses: torch.Tensor
    center_loss: float
    directions: tuple[torch.Tensor, torch.Tensor]
    cost: EvaluationCost


def loss_surface_2d(
    model: nn.Module,
    loss_fn: LossClosure,
    directions: tuple[torch.Tensor, torch.Tensor] | None = None,
    x_range: tuple[float, float] = (-1.0, 1.0),
    y_range: tuple[float, float] = (-1.0, 1.0),
    resolution: int = 25,
    seed: int = 0,
    one_dimensional: OneDimensionalRule = "zero",
    center: torch.Tensor | None = None,
    progress: bool = True,
    report: Callable[[str], None] | None = print,
) -> LossSurface:
    """The loss on a ``resolution x resolution`` grid of the plane through the model's parameters.

    Args:
        model: the module; its current trainable parameters are the centre unless ``center`` is given.
        loss_fn: zero-argument closure returning the loss at the current parameters.
        directions: two flat direction vectors; by default two random filter-normalised directions
            (:func:`~descentlab.analysis.directions.filter_normalized_direction`, Li et al. 2018) drawn
            with ``seed``. Li et al. do not orthogonalise them: in high dimensions two random directions
            are nearly orthogonal already.
        x_range, y_range: coordinate ranges along the two directions.
        resolution: grid points per axis (2 to 1001).
        seed: seed of the random directions.
        one_dimensional: how directions treat biases and batch-norm parameters (see
            :mod:`descentlab.analysis.directions`).
        center: flat parameter vector at the origin of the plane (default: the current parameters).
        progress: show a tqdm progress bar (shown only when stderr is a terminal).
        report: called with a line giving the cost (evaluations, estimated time) before the grid starts;
            ``None`` to stay silent. The cost is also in the result.
    """
    if not 2 <= resolution <= 1001:
        raise ValueError(f"resolution must be in [2, 1001], got {resolution}")
    for name, (low, high) in (("x_range", x_range), ("y_range", y_range)):
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"{name} must be (low, high) with finite low < high, got {(low, high)}")
    with restored_model_state(model):
        if center is not None:
            assign_parameter_vector(model, center)
        origin = parameter_vector(model).to(torch.float64)
        if directions is None:
            generator = torch.Generator().manual_seed(seed)
            directions = (
                filter_normalized_direction(model, generator, one_dimensional),
                filter_normalized_direction(model, generator, one_dimensional),
            )
        first, second = (
            direction.detach().to(origin.device, torch.float64).reshape(-1) for direction in directions
        )
        if first.numel() != origin.numel() or second.numel() != origin.numel():
            raise ValueError(
                f"directions must be flat vectors of {origin.numel()} entries, got {first.numel()} and "
                f"{second.numel()}"
            )
        center_loss, _ = _timed_loss(loss_fn)  # the first call may pay one-off costs; time the second
        _, seconds = _timed_loss(loss_fn)
        cost = EvaluationCost(resolution * resolution, seconds)
        if report is not None:
            report(f"loss surface: {cost}")
        xs = torch.linspace(*x_range, resolution, dtype=torch.float64)
        ys = torch.linspace(*y_range, resolution, dtype=torch.float64)
        losses = torch.empty(resolution, resolution, dtype=torch.float64)
        with tqdm(
            total=resolution * resolution, desc="loss surface", disable=None if progress else True
        ) as bar:
            for j, y in enumerate(ys.tolist()):
                for i, x in enumerate(xs.tolist()):
                    losses[j, i] = _evaluate_at(model, loss_fn, origin + x * first + y * second)
                    bar.update()
    return LossSurface(
        xs=xs, ys=ys, losses=losses, center_loss=center_loss, directions=(first, second), cost=cost
    )


def plot_interpolation(interpolation: Interpolation, log_scale: bool = False) -> Figure:
    """Plot loss against alpha, with the endpoints alpha = 0 and alpha = 1 marked."""
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    axes.plot(interpolation.alphas.numpy(), interpolation.losses.numpy())
    for alpha in (0.0, 1.0):
        axes.axvline(alpha, color="grey", linestyle=":", linewidth=1)
    if log_scale:
        axes.set_yscale("log")
    axes.set_xlabel("α  (0: start, 1: end)")
    axes.set_ylabel("loss")
    axes.set_title("loss along the line between two parameter vectors")
    figure.tight_layout()
    return figure


def plot_loss_surface(
    surface: LossSurface,
    levels: int = 30,
    log_scale: bool = True,
    title: str | None = None,
    center_label: str = "centre",
) -> Figure:
    """Contour plot of a :class:`LossSurface` (log-spaced levels for positive losses), centre marked."""
    figure = Figure(figsize=(6, 5))
    axes = figure.add_subplot()
    values = surface.losses.numpy()
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError("every loss on the surface is NaN or infinite; shrink x_range/y_range")
    plotted = np.where(finite, values, np.nanmax(np.where(finite, values, np.nan)))
    use_log = log_scale and bool((plotted > 0).all())
    if use_log:
        plotted = np.log10(plotted)
    filled = axes.contourf(surface.xs.numpy(), surface.ys.numpy(), plotted, levels=levels, cmap="viridis")
    axes.contour(
        surface.xs.numpy(), surface.ys.numpy(), plotted, levels=levels, colors="white", linewidths=0.3
    )
    figure.colorbar(filled, ax=axes, label="log10 loss" if use_log else "loss")
    axes.plot([0], [0], marker="*", color="red", markersize=12, linestyle="none", label=center_label)
    axes.legend(loc="best", fontsize="small")
    axes.set_xlabel("direction 1")
    axes.set_ylabel("direction 2")
    axes.set_title(title or "loss surface (filter-normalised directions)")
    figure.tight_layout()
    return figure
