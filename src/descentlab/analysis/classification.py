"""Say what kind of point a parameter vector is -- minimum, maximum, saddle, flat -- with the evidence.

The second-derivative test: at a point with (near) zero gradient, all Hessian eigenvalues positive means a
strict local minimum, all negative a strict local maximum, both signs a saddle. When some eigenvalue is
within tolerance of zero and the rest share a sign, second derivatives cannot decide: the point is
``"flat"`` (a degenerate critical point, e.g. a valley floor of minima). A point whose gradient is not
near zero is ``"not critical"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from descentlab.analysis.hessian import DEFAULT_MAX_PARAMETERS, HessianOperator, LossClosure, dense_hessian
from descentlab.analysis.spectrum import top_eigenvalues
from descentlab.autodiff import pointwise_gradient_and_hessian

PointLabel = Literal["minimum", "maximum", "saddle", "flat", "not critical"]


@dataclass(frozen=True)
class PointClassification:
    """The label of a point and the evidence it rests on.

    Attributes:
        label: ``"minimum"``, ``"maximum"``, ``"saddle"``, ``"flat"`` or ``"not critical"``.
        gradient_norm: Euclidean norm of the gradient at the point.
        eigenvalues: Hessian eigenvalues used (all of them, or the extreme ones from Lanczos), ascending.
        gradient_tolerance: gradient norms at or below this count as zero.
        eigenvalue_tolerance: eigenvalues with absolute value at or below this count as zero.
        exact: whether ``eigenvalues`` is the full spectrum (``False``: only its extremes).
    """

    label: PointLabel
    gradient_norm: float
    eigenvalues: tuple[float, ...]
    gradient_tolerance: float
    eigenvalue_tolerance: float
    exact: bool = True

    def explanation(self) -> str:
        """One sentence giving the label and the numbers behind it."""
        low, high = min(self.eigenvalues), max(self.eigenvalues)
        kind = "eigenvalues" if self.exact else "extreme eigenvalues"
        return (
            f"{self.label}: |grad| = {self.gradient_norm:.3g} (tolerance {self.gradient_tolerance:.3g}), "
            f"Hessian {kind} in [{low:.4g}, {high:.4g}] (zero tolerance {self.eigenvalue_tolerance:.3g})"
        )


def label_from_evidence(
    gradient_norm: float,
    eigenvalues: torch.Tensor,
    gradient_tolerance: float = 1e-6,
    eigenvalue_tolerance: float = 1e-8,
    exact: bool = True,
) -> PointClassification:
    """Apply the second-derivative test to a gradient norm and Hessian eigenvalues."""
    if gradient_tolerance < 0 or eigenvalue_tolerance < 0:
        raise ValueError(
            f"tolerances must be >= 0, got gradient_tolerance={gradient_tolerance}, "
            f"eigenvalue_tolerance={eigenvalue_tolerance}"
        )
    values = torch.sort(torch.as_tensor(eigenvalues, dtype=torch.float64).reshape(-1)).values
    if values.numel() == 0:
        raise ValueError("eigenvalues must not be empty")
    positive = bool((values > eigenvalue_tolerance).any())
    negative = bool((values < -eigenvalue_tolerance).any())
    zero = bool((values.abs() <= eigenvalue_tolerance).any())
    label: PointLabel
    if gradient_norm > gradient_tolerance:
        label = "not critical"
    elif positive and negative:
        label = "saddle"
    elif zero:
        label = "flat"
    elif positive:
        label = "minimum"
    else:
        label = "maximum"
    return PointClassification(
        label=label,
        gradient_norm=float(gradient_norm),
        eigenvalues=tuple(float(value) for value in values),
        gradient_tolerance=gradient_tolerance,
        eigenvalue_tolerance=eigenvalue_tolerance,
        exact=exact,
    )


def classify_model_point(
    model: nn.Module,
    loss_fn: LossClosure,
    gradient_tolerance: float = 1e-6,
    eigenvalue_tolerance: float = 1e-8,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
    lanczos_steps: int = 60,
    seed: int = 0,
) -> PointClassification:
    """Classify the model's current parameters as a point of the loss ``loss_fn()``.

    Up to ``max_parameters`` parameters the full exact Hessian spectrum is used; above it, the largest and
    the smallest eigenvalue from Lanczos (``exact=False`` in the result). Lanczos cannot prove a zero
    eigenvalue exists among the interior ones, so a large model is labelled ``"flat"`` only when one of
    the extremes is within tolerance.
    """
    operator = HessianOperator(model, loss_fn)
    if operator.dim <= max_parameters:
        return label_from_evidence(
            float(torch.linalg.vector_norm(operator.gradient)),
            torch.linalg.eigvalsh(dense_hessian(operator)),
            gradient_tolerance,
            eigenvalue_tolerance,
        )
    steps = min(lanczos_steps, operator.dim)
    largest = top_eigenvalues(operator, 1, steps=steps, which="largest", seed=seed).values
    smallest = top_eigenvalues(operator, 1, steps=steps, which="smallest", seed=seed).values
    return label_from_evidence(
        float(torch.linalg.vector_norm(operator.gradient)),
        torch.cat([smallest, largest]),
        gradient_tolerance,
        eigenvalue_tolerance,
        exact=False,
    )


def gradient_and_hessian_2d(
    function: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients ``(..., 2)`` and Hessians ``(..., 2, 2)`` of a vectorised 2-D function at ``points``.

    ``function`` maps ``(..., 2)`` to ``(...)`` point by point; exact derivatives in float64, three
    backward passes whatever the number of points
    (:func:`descentlab.autodiff.pointwise_gradient_and_hessian`).
    """
    if points.shape[-1:] != (2,):
        raise ValueError(f"points must have shape (..., 2), got {tuple(points.shape)}")
    return pointwise_gradient_and_hessian(function, points.to(torch.float64))


def classify_point_2d(
    function: Callable[[torch.Tensor], torch.Tensor],
    point: torch.Tensor | tuple[float, float],
    gradient_tolerance: float = 1e-6,
    eigenvalue_tolerance: float = 1e-8,
) -> PointClassification:
    """Classify ``point`` of a vectorised 2-D function ``f: (..., 2) -> (...)`` (exact derivatives)."""
    gradient, hessian = gradient_and_hessian_2d(function, torch.as_tensor(point).reshape(2))
    return label_from_evidence(
        float(torch.linalg.vector_norm(gradient)),
        torch.linalg.eigvalsh(hessian),
        gradient_tolerance,
        eigenvalue_tolerance,
    )
