"""Find, label and plot the critical points (minima, maxima, saddles) of a 2-D function in a box."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure

from descentlab.analysis.classification import (
    PointClassification,
    gradient_and_hessian_2d,
    label_from_evidence,
)
from descentlab.analysis.convexity import Bounds2D, box_grid


@dataclass(frozen=True)
class CriticalPoint:
    """A critical point of a 2-D function: where it is, its value, and its classification."""

    point: tuple[float, float]
    value: float
    classification: PointClassification

    @property
    def label(self) -> str:
        """``"minimum"``, ``"maximum"``, ``"saddle"`` or ``"flat"``."""
        return self.classification.label


def find_critical_points_2d(
    function: Callable[[torch.Tensor], torch.Tensor],
    bounds: Bounds2D,
    starts_per_axis: int = 25,
    iterations: int = 60,
    gradient_tolerance: float = 1e-8,
    eigenvalue_tolerance: float = 1e-8,
    merge_distance: float | None = None,
) -> list[CriticalPoint]:
    r"""All critical points of ``f: (..., 2) -> (...)`` that Newton's method reaches from a grid of starts.

    Newton's method on the gradient, :math:`x \leftarrow x - H(x)^{+} \nabla f(x)` (pseudo-inverse, so
    singular Hessians do not stop it), converges to minima, maxima and saddles alike, unlike descent.
    It runs from ``starts_per_axis``\ :sup:`2` grid points at once (vectorised); a step is capped at a
    tenth of the box diagonal so that a start near an inflection does not fly off. Converged points
    (gradient norm <= ``gradient_tolerance``) inside the box are merged when closer than
    ``merge_distance`` (default 1e-4 of the box diagonal) and labelled by the second-derivative test.

    A grid of starts finds the critical points whose basin of attraction under Newton's method it
    samples; widen ``starts_per_axis`` when the function varies on a finer scale than the grid.

    Returns:
        The critical points, sorted by label (minima, saddles, maxima, flat) and then by value.
    """
    points = box_grid(bounds, starts_per_axis, "starts_per_axis").reshape(-1, 2)
    (x_min, x_max), (y_min, y_max) = bounds
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    diagonal = ((x_max - x_min) ** 2 + (y_max - y_min) ** 2) ** 0.5
    merge_distance = 1e-4 * diagonal if merge_distance is None else merge_distance
    for _ in range(iterations):
        gradient, hessian = gradient_and_hessian_2d(function, points)
        step = -(torch.linalg.pinv(hessian) @ gradient.unsqueeze(-1)).squeeze(-1)
        length = torch.linalg.vector_norm(step, dim=-1, keepdim=True)
        step = step * torch.clamp(0.1 * diagonal / length.clamp_min(1e-300), max=1.0)
        points = torch.nan_to_num(points + step, nan=float("inf"))
    finite = torch.isfinite(points).all(dim=-1)
    points = points[finite]
    gradient, hessian = gradient_and_hessian_2d(function, points)
    gradient_norms = torch.linalg.vector_norm(gradient, dim=-1)
    slack = 1e-9 * diagonal
    inside = (
        (points[:, 0] >= x_min - slack)
        & (points[:, 0] <= x_max + slack)
        & (points[:, 1] >= y_min - slack)
        & (points[:, 1] <= y_max + slack)
    )
    keep = inside & (gradient_norms <= gradient_tolerance)
    points, gradient_norms, hessian = points[keep], gradient_norms[keep], hessian[keep]
    order = torch.argsort(gradient_norms)
    chosen: list[int] = []
    for index in order.tolist():
        if all(
            float(torch.linalg.vector_norm(points[index] - points[other])) > merge_distance
            for other in chosen
        ):
            chosen.append(index)
    with torch.no_grad():
        values = function(points[chosen]) if chosen else torch.empty(0)
    found = []
    for position, index in enumerate(chosen):
        classification = label_from_evidence(
            float(gradient_norms[index]),
            torch.linalg.eigvalsh(hessian[index]),
            gradient_tolerance,
            eigenvalue_tolerance,
        )
        found.append(
            CriticalPoint(
                point=(float(points[index, 0]), float(points[index, 1])),
                value=float(values[position]),
                classification=classification,
            )
        )
    rank = {"minimum": 0, "saddle": 1, "maximum": 2, "flat": 3, "not critical": 4}
    return sorted(found, key=lambda point: (rank[point.label], point.value))


_MARKERS = {
    "minimum": ("o", "tab:green"),
    "saddle": ("X", "tab:orange"),
    "maximum": ("^", "tab:red"),
    "flat": ("s", "tab:purple"),
    "not critical": (".", "black"),
}


def plot_critical_points(
    function: Callable[[torch.Tensor], torch.Tensor],
    bounds: Bounds2D,
    points: list[CriticalPoint] | None = None,
    resolution: int = 200,
    levels: int = 30,
    title: str | None = None,
) -> Figure:
    """A filled contour plot of ``function`` over ``bounds`` with its critical points marked by label.

    ``points`` defaults to :func:`find_critical_points_2d` on the same box.
    """
    if points is None:
        points = find_critical_points_2d(function, bounds)
    grid = box_grid(bounds, resolution)
    with torch.no_grad():
        values = function(grid).numpy()
    figure = Figure(figsize=(6, 5))
    axes = figure.add_subplot()
    filled = axes.contourf(grid[..., 0].numpy(), grid[..., 1].numpy(), values, levels=levels, cmap="viridis")
    axes.contour(
        grid[..., 0].numpy(), grid[..., 1].numpy(), values, levels=levels, colors="white", linewidths=0.3
    )
    figure.colorbar(filled, ax=axes, label="f")
    for label, (marker, color) in _MARKERS.items():
        chosen = [point.point for point in points if point.label == label]
        if chosen:
            xs, ys = zip(*chosen)
            axes.scatter(
                xs,
                ys,
                marker=marker,
                color=color,
                edgecolors="black",
                s=70,
                label=f"{label} ({len(chosen)})",
                zorder=3,
            )
    if points:
        axes.legend(loc="best", fontsize="small")
    axes.set_xlim(*bounds[0])
    axes.set_ylim(*bounds[1])
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.set_title(title or "critical points")
    figure.tight_layout()
    return figure
