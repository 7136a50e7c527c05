"""A training trajectory projected on its top two principal directions (Li et al. 2018, section 7).

Random directions almost never see the path an optimizer took (two random vectors in high dimension are
nearly orthogonal to it). Li et al. instead stack the differences :math:`\\theta_i - \\theta_n` of the
saved points from the final point, take the two leading principal components of that matrix, and plot
the path in that plane over the loss surface, with the final point at the origin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure
from torch import nn

from descentlab.analysis.hessian import LossClosure
from descentlab.analysis.landscape import LossSurface, loss_surface_2d, plot_loss_surface


@dataclass
class TrajectoryProjection:
    """A trajectory in the plane of its two leading principal directions.

    Attributes:
        coordinates: ``(T, 2)``: :math:`(d_1^\\top(\\theta_i - \\theta_n), d_2^\\top(\\theta_i - \\theta_n))`.
        directions: ``(2, dim)`` orthonormal principal directions :math:`d_1, d_2`.
        explained_variance_ratio: fraction of the variance of the differences along each direction.
        final: the final point :math:`\\theta_n` (the origin of the plane).
    """

    coordinates: torch.Tensor
    directions: torch.Tensor
    explained_variance_ratio: torch.Tensor
    final: torch.Tensor


def project_trajectory(points: Sequence[torch.Tensor] | torch.Tensor) -> TrajectoryProjection:
    """Project a sequence of flat parameter vectors (oldest first, final last) on its top-2 PCA plane.

    The rows :math:`\\theta_i - \\theta_n` (all ``T`` points; the final one is the zero row) are centred
    and decomposed by SVD, as scikit-learn's PCA (used by Li et al.) does; the coordinates are the
    projections of the *uncentred* differences, so the final point sits at the origin.
    Collect the points with :func:`~descentlab.analysis.parameter_vector.parameter_vector` during training.
    """
    # On the CPU: T x dim is small next to a model's activations, and the plots need numpy arrays anyway.
    matrix = torch.stack([torch.as_tensor(point).detach().reshape(-1).cpu() for point in points])
    matrix = matrix.to(torch.float64)
    if matrix.shape[0] < 2 or matrix.shape[1] < 2:
        raise ValueError(
            f"need at least 2 points of at least 2 parameters, got {matrix.shape[0]} points of "
            f"{matrix.shape[1]}"
        )
    final = matrix[-1]
    differences = matrix - final
    centred = differences - differences.mean(dim=0)
    _, singular_values, right = torch.linalg.svd(centred, full_matrices=False)
    variance = singular_values**2
    total = variance.sum()
    if total == 0:
        raise ValueError("all points are identical: the trajectory has no direction to project on")
    directions = right[:2]
    # SVD leaves each sign free; fix it so the start lies at a positive coordinate, for stable plots.
    signs = torch.sign(differences[0] @ directions.T)
    directions = directions * torch.where(signs == 0, torch.ones_like(signs), signs)[:, None]
    ratio = torch.zeros(2, dtype=torch.float64)
    ratio[: min(2, variance.numel())] = (variance / total)[:2]
    return TrajectoryProjection(
        coordinates=differences @ directions.T,
        directions=directions,
        explained_variance_ratio=ratio,
        final=final,
    )


def trajectory_loss_surface(
    model: nn.Module,
    loss_fn: LossClosure,
    projection: TrajectoryProjection,
    resolution: int = 25,
    margin: float = 0.2,
    progress: bool = True,
    report: Callable[[str], None] | None = print,
) -> LossSurface:
    """The loss on the PCA plane around the final point, over the trajectory's extent plus ``margin``."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    ranges = []
    for axis in range(2):
        low, high = float(projection.coordinates[:, axis].min()), float(projection.coordinates[:, axis].max())
        pad = margin * (high - low) if high > low else 1.0
        ranges.append((low - pad, high + pad))
    return loss_surface_2d(
        model,
        loss_fn,
        directions=(projection.directions[0], projection.directions[1]),
        x_range=ranges[0],
        y_range=ranges[1],
        resolution=resolution,
        center=projection.final,
        progress=progress,
        report=report,
    )


def plot_trajectory(projection: TrajectoryProjection, surface: LossSurface | None = None) -> Figure:
    """Plot the projected path (start and end marked), over the loss contours of ``surface`` if given."""
    if surface is not None:
        figure = plot_loss_surface(
            surface, title="training trajectory on its PCA plane", center_label="final point"
        )
        axes = figure.axes[0]
    else:
        figure = Figure(figsize=(6, 5))
        axes = figure.add_subplot()
        axes.set_title("training trajectory on its PCA plane")
    xy = projection.coordinates.numpy()
    axes.plot(xy[:, 0], xy[:, 1], color="red", marker=".", markersize=4, linewidth=1, label="trajectory")
    axes.plot(xy[0, 0], xy[0, 1], marker="o", color="orange", linestyle="none", label="start", zorder=3)
    ratio = projection.explained_variance_ratio
    axes.set_xlabel(f"PC 1 ({100 * float(ratio[0]):.1f}% of variance)")
    axes.set_ylabel(f"PC 2 ({100 * float(ratio[1]):.1f}% of variance)")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return figure
