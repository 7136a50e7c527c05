"""The Lanczos iteration with full reorthogonalisation, for any symmetric operator given by products.

An operator is anything with ``dim`` (its size) and ``matvec(vector) -> vector`` on flat tensors, such as
:class:`~descentlab.analysis.hessian.HessianOperator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


class SymmetricOperator(Protocol):
    """A symmetric linear map known only through products: ``dim`` and ``matvec``."""

    dim: int

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """Return the product of the operator with the flat ``vector``."""
        ...


@dataclass
class LanczosResult:
    """A Lanczos factorisation :math:`A Q \\approx Q T` with :math:`T` tridiagonal.

    Attributes:
        alphas: diagonal of :math:`T` (length ``m``).
        betas: off-diagonal of :math:`T` (length ``m - 1``).
        basis: orthonormal Lanczos vectors as rows, shape ``(m, dim)``, float64.
    """

    alphas: torch.Tensor
    betas: torch.Tensor
    basis: torch.Tensor

    def tridiagonal(self) -> torch.Tensor:
        """The ``m x m`` tridiagonal matrix :math:`T`."""
        return torch.diag(self.alphas) + torch.diag(self.betas, 1) + torch.diag(self.betas, -1)

    def ritz_pairs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Eigenvalues of :math:`T` (ascending) and the eigenvectors of :math:`T` as columns."""
        return torch.linalg.eigh(self.tridiagonal())


def lanczos(
    operator: SymmetricOperator,
    steps: int,
    start: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> LanczosResult:
    """Run ``steps`` Lanczos iterations on ``operator`` in float64 with full reorthogonalisation.

    Each new vector is orthogonalised twice against every previous one (classical Gram-Schmidt, applied
    twice: "twice is enough"), which keeps the basis orthogonal to rounding error so that no spurious
    copies of converged eigenvalues appear. The iteration stops early when it finds an invariant
    subspace (an off-diagonal entry below ``1e-10`` times the largest seen).

    Args:
        operator: the symmetric operator.
        steps: number of iterations, ``1 <= steps <= operator.dim``.
        start: start vector (normalised here); a standard Gaussian vector from ``generator`` by default.
        generator: random generator for the start vector.

    References:
        C. Lanczos, "An iteration method for the solution of the eigenvalue problem of linear differential
        and integral operators", J. Res. Nat. Bur. Standards 45, 1950. G. H. Golub and C. F. Van Loan,
        "Matrix Computations", 4th ed., section 10.1.
    """
    if not 1 <= steps <= operator.dim:
        raise ValueError(f"steps must be in [1, {operator.dim}] (the operator's size), got {steps}")
    if start is None:
        start = torch.randn(operator.dim, generator=generator, dtype=torch.float64)
    vector = start.detach().to(torch.float64).reshape(-1)
    if vector.numel() != operator.dim:
        raise ValueError(f"start must have {operator.dim} entries, got {vector.numel()}")
    norm = torch.linalg.vector_norm(vector)
    if norm == 0:
        raise ValueError("start vector must be nonzero")
    basis = torch.zeros(steps, operator.dim, dtype=torch.float64)
    basis[0] = vector / norm
    alphas, betas = [], []
    largest_beta = 0.0
    for step in range(steps):
        product = operator.matvec(basis[step]).to(torch.float64).cpu()
        alphas.append(float(basis[step] @ product))
        if step == steps - 1:
            break
        for _ in range(2):
            product = product - basis[: step + 1].T @ (basis[: step + 1] @ product)
        beta = float(torch.linalg.vector_norm(product))
        largest_beta = max(largest_beta, beta)
        if beta <= 1e-10 * max(largest_beta, abs(alphas[0]), 1e-300):
            basis = basis[: step + 1]
            break
        betas.append(beta)
        basis[step + 1] = product / beta
    return LanczosResult(
        alphas=torch.tensor(alphas, dtype=torch.float64),
        betas=torch.tensor(betas, dtype=torch.float64),
        basis=basis,
    )
