"""Check whether a 2-D function is convex on a box, by testing its Hessian on a grid of points."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from descentlab.analysis.classification import gradient_and_hessian_2d

Bounds2D = tuple[tuple[float, float], tuple[float, float]]


def box_grid(bounds: Bounds2D, per_axis: int, name: str = "resolution") -> torch.Tensor:
    """A float64 grid of ``per_axis x per_axis`` points over ``bounds``, shape ``(per_axis, per_axis, 2)``.

    ``grid[j, i]`` is ``(xs[i], ys[j])``. ``name`` is the caller's word for ``per_axis`` in the error.

    Raises:
        ValueError: when a bound's minimum is not below its maximum, or ``per_axis < 2``.
    """
    (x_min, x_max), (y_min, y_max) = bounds
    if not (x_min < x_max and y_min < y_max):
        raise ValueError(f"bounds must be ((x_min, x_max), (y_min, y_max)) with min < max, got {bounds}")
    if per_axis < 2:
        raise ValueError(f"{name} must be >= 2, got {per_axis}")
    xs = torch.linspace(x_min, x_max, per_axis, dtype=torch.float64)
    ys = torch.linspace(y_min, y_max, per_axis, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)


@dataclass
class ConvexityReport:
    """Where on a grid the Hessian of a 2-D function is positive semidefinite.

    A twice-differentiable function is convex on a convex set iff its Hessian is PSD everywhere there; a
    grid can refute convexity (a point with a negative eigenvalue) but only suggest it.

    Attributes:
        convex: ``True`` when the smallest Hessian eigenvalue is ``>= -tolerance`` at every grid point.
        tolerance: eigenvalues down to ``-tolerance`` count as zero (rounding).
        smallest_eigenvalue: the smallest Hessian eigenvalue over the grid.
        worst_point: the grid point where it occurs.
        violations: grid points with a negative eigenvalue, shape ``(count, 2)``.
        violation_fraction: fraction of the grid points that are violations.
        xs, ys: grid coordinates; ``min_eigenvalues[j, i]`` belongs to ``(xs[i], ys[j])``.
    """

    convex: bool
    tolerance: float
    smallest_eigenvalue: float
    worst_point: tuple[float, float]
    violations: torch.Tensor
    violation_fraction: float
    xs: torch.Tensor
    ys: torch.Tensor
    min_eigenvalues: torch.Tensor

    def summary(self) -> str:
        """One line: convex or not, and where not."""
        if self.convex:
            return (
                f"convex on the grid: smallest Hessian eigenvalue {self.smallest_eigenvalue:.4g} "
                f">= -{self.tolerance:.3g} at all {self.xs.numel() * self.ys.numel()} points"
            )
        box = self.violations
        return (
            f"not convex: Hessian has a negative eigenvalue at {box.shape[0]} of "
            f"{self.xs.numel() * self.ys.numel()} grid points ({100 * self.violation_fraction:.1f}%), "
            f"x in [{float(box[:, 0].min()):.3g}, {float(box[:, 0].max()):.3g}], "
            f"y in [{float(box[:, 1].min()):.3g}, {float(box[:, 1].max()):.3g}]; most negative "
            f"{self.smallest_eigenvalue:.4g} at ({self.worst_point[0]:.3g}, {self.worst_point[1]:.3g})"
        )


def check_convexity_2d(
    function: Callable[[torch.Tensor], torch.Tensor],
    bounds: Bounds2D,
    resolution: int = 101,
    tolerance: float = 1e-9,
) -> ConvexityReport:
    """Test the Hessian of ``f: (..., 2) -> (...)`` for positive semidefiniteness on a grid over ``bounds``.

    Args:
        function: vectorised 2-D function, differentiable twice by autograd.
        bounds: ``((x_min, x_max), (y_min, y_max))``.
        resolution: grid points per axis (>= 2).
        tolerance: eigenvalues ``>= -tolerance`` count as nonnegative.
    """
    points = box_grid(bounds, resolution)
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    xs, ys = points[0, :, 0].clone(), points[:, 0, 1].clone()
    _, hessians = gradient_and_hessian_2d(function, points)
    min_eigenvalues = torch.linalg.eigvalsh(hessians)[..., 0]
    bad = min_eigenvalues < -tolerance
    worst = torch.argmin(min_eigenvalues)
    worst_point = points.reshape(-1, 2)[worst]
    return ConvexityReport(
        convex=not bool(bad.any()),
        tolerance=tolerance,
        smallest_eigenvalue=float(min_eigenvalues.min()),
        worst_point=(float(worst_point[0]), float(worst_point[1])),
        violations=points[bad],
        violation_fraction=float(bad.double().mean()),
        xs=xs,
        ys=ys,
        min_eigenvalues=min_eigenvalues,
    )
