"""What the Hessian looks like without forming it: top eigenvalues, trace, and spectral density.

All three take a :class:`~descentlab.analysis.lanczos.SymmetricOperator`, normally a
:class:`~descentlab.analysis.hessian.HessianOperator`, and cost only Hessian-vector products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from matplotlib.figure import Figure

from descentlab.analysis.lanczos import SymmetricOperator, lanczos


@dataclass
class Eigenpairs:
    """Extreme eigenvalues of an operator from Lanczos.

    Attributes:
        values: eigenvalue estimates (Ritz values), in the order asked for (largest first for
            ``which="largest"``).
        vectors: matching unit eigenvector estimates as rows, shape ``(k, dim)``, float64.
        residual_norms: :math:`\\|A v - \\lambda v\\|` per pair; a small residual certifies that an exact
            eigenvalue lies within that distance of the estimate.
        steps: Lanczos iterations used (one product each, plus one per residual).
    """

    values: torch.Tensor
    vectors: torch.Tensor
    residual_norms: torch.Tensor
    steps: int


def top_eigenvalues(
    operator: SymmetricOperator,
    k: int = 1,
    steps: int | None = None,
    which: Literal["largest", "smallest", "magnitude"] = "largest",
    seed: int = 0,
) -> Eigenpairs:
    """The ``k`` extreme eigenvalues of ``operator`` by Lanczos with full reorthogonalisation.

    Args:
        operator: symmetric operator (e.g. a :class:`~descentlab.analysis.hessian.HessianOperator`).
        k: how many eigenvalues.
        steps: Lanczos iterations; default ``min(dim, max(3k, 40))``. With ``steps == dim`` the values are
            exact up to rounding; fewer steps resolve the well-separated extremes first.
        which: ``"largest"`` (algebraic, the usual "top" sharpness), ``"smallest"`` (most negative
            curvature) or ``"magnitude"``.
        seed: seed of the random start vector.
    """
    if not 1 <= k <= operator.dim:
        raise ValueError(f"k must be in [1, {operator.dim}] (the number of parameters), got {k}")
    if which not in ("largest", "smallest", "magnitude"):
        raise ValueError(f"which must be 'largest', 'smallest' or 'magnitude', got {which!r}")
    steps = min(operator.dim, max(3 * k, 40)) if steps is None else steps
    if not k <= steps <= operator.dim:
        raise ValueError(f"steps must be in [k={k}, {operator.dim}], got {steps}")
    result = lanczos(operator, steps, generator=torch.Generator().manual_seed(seed))
    ritz_values, ritz_vectors = result.ritz_pairs()
    if which == "largest":
        order = torch.argsort(ritz_values, descending=True)
    elif which == "smallest":
        order = torch.argsort(ritz_values)
    else:
        order = torch.argsort(ritz_values.abs(), descending=True)
    order = order[: min(k, ritz_values.numel())]
    values = ritz_values[order]
    vectors = (ritz_vectors[:, order].T @ result.basis).contiguous()
    residuals = torch.stack(
        [
            torch.linalg.vector_norm(operator.matvec(vector).to(torch.float64).cpu() - value * vector)
            for value, vector in zip(values, vectors)
        ]
    )
    return Eigenpairs(values=values, vectors=vectors, residual_norms=residuals, steps=result.alphas.numel())


@dataclass
class TraceEstimate:
    """A Hutchinson trace estimate with its standard error (sample std / sqrt(samples))."""

    estimate: float
    standard_error: float
    samples: int


def hutchinson_trace(operator: SymmetricOperator, samples: int = 100, seed: int = 0) -> TraceEstimate:
    """Estimate :math:`\\operatorname{tr}(A) = \\mathbb{E}[v^\\top A v]` with Rademacher vectors :math:`v`.

    Rademacher entries (:math:`\\pm 1` with probability 1/2) give the estimator of least variance among
    i.i.d. choices, :math:`\\operatorname{Var} = 2\\sum_{i \\ne j} A_{ij}^2` per sample.

    References:
        M. F. Hutchinson, "A stochastic estimator of the trace of the influence matrix for Laplacian
        smoothing splines", Communications in Statistics - Simulation and Computation 19(2), 1990.
    """
    if samples < 2:
        raise ValueError(f"samples must be >= 2 (to estimate the standard error), got {samples}")
    generator = torch.Generator().manual_seed(seed)
    quadratic_forms = []
    for _ in range(samples):
        vector = torch.randint(0, 2, (operator.dim,), generator=generator, dtype=torch.float64) * 2 - 1
        quadratic_forms.append(float(vector @ operator.matvec(vector).to(torch.float64).cpu()))
    values = torch.tensor(quadratic_forms, dtype=torch.float64)
    return TraceEstimate(
        estimate=float(values.mean()),
        standard_error=float(values.std() / math.sqrt(samples)),
        samples=samples,
    )


@dataclass
class SpectralDensity:
    """A Gaussian-smoothed spectral density from stochastic Lanczos quadrature.

    Attributes:
        grid: points :math:`t` where the density is evaluated.
        density: :math:`\\phi_\\sigma(t)`, integrating to about 1 over the grid.
        nodes: Ritz values per random vector, shape ``(vectors, steps)``.
        weights: quadrature weights per random vector (each row sums to 1).
        sigma: standard deviation of the Gaussian kernel.
    """

    grid: torch.Tensor
    density: torch.Tensor
    nodes: torch.Tensor
    weights: torch.Tensor
    sigma: float


def spectral_density(
    operator: SymmetricOperator,
    vectors: int = 10,
    steps: int = 80,
    sigma: float | None = None,
    grid_points: int = 1000,
    seed: int = 0,
) -> SpectralDensity:
    """Estimate the eigenvalue density of ``operator`` by stochastic Lanczos quadrature (SLQ).

    For each of ``vectors`` random unit vectors :math:`v_l`, ``steps`` Lanczos iterations give
    :math:`T_l = U_l \\operatorname{diag}(\\theta^l) U_l^\\top`; with weights
    :math:`\\tau^l_i = (U_l)_{1i}^2` the density is

    .. math:: \\phi_\\sigma(t) = \\frac{1}{n_v} \\sum_{l=1}^{n_v} \\sum_{i=1}^{m} \\tau^l_i\\,
        \\frac{1}{\\sigma\\sqrt{2\\pi}} \\exp\\Big(-\\frac{(t - \\theta^l_i)^2}{2\\sigma^2}\\Big).

    Args:
        operator: symmetric operator.
        vectors: number of random start vectors :math:`n_v`.
        steps: Lanczos iterations :math:`m` per vector (capped at ``dim``).
        sigma: kernel width; default 1% of the span of all Ritz values (Ghorbani et al. use
            :math:`\\sigma^2 = 10^{-5}` after rescaling the spectrum to [-1, 1], i.e. about 0.3% of the
            span; we take a wider kernel because we use fewer vectors).
        grid_points: number of evaluation points, spanning the Ritz values with a margin of
            :math:`5\\sigma`.
        seed: seed of the random vectors.

    References:
        B. Ghorbani, S. Krishnan, Y. Xiao, "An Investigation into Neural Net Optimization via Hessian
        Eigenvalue Density", ICML 2019. L. Lin, Y. Saad, C. Yang, "Approximating spectral densities of
        large matrices", SIAM Review 58(1), 2016.
    """
    if vectors < 1:
        raise ValueError(f"vectors must be >= 1, got {vectors}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if grid_points < 2:
        raise ValueError(f"grid_points must be >= 2, got {grid_points}")
    if sigma is not None and sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    steps = min(steps, operator.dim)
    generator = torch.Generator().manual_seed(seed)
    all_nodes = torch.full((vectors, steps), float("nan"), dtype=torch.float64)
    all_weights = torch.zeros((vectors, steps), dtype=torch.float64)
    for index in range(vectors):
        result = lanczos(operator, steps, generator=generator)
        values, eigenvectors = result.ritz_pairs()
        all_nodes[index, : values.numel()] = values
        all_weights[index, : values.numel()] = eigenvectors[0] ** 2
    finite = all_nodes[~torch.isnan(all_nodes)]
    span = float(finite.max() - finite.min())
    if sigma is None:
        sigma = 0.01 * span if span > 0 else max(1e-3 * float(finite.abs().max()), 1e-6)
    grid = torch.linspace(
        float(finite.min()) - 5 * sigma, float(finite.max()) + 5 * sigma, grid_points, dtype=torch.float64
    )
    nodes = torch.nan_to_num(all_nodes, nan=0.0)
    density = torch.zeros_like(grid)
    for row_nodes, row_weights in zip(nodes, all_weights):  # one vector at a time bounds the memory
        kernel = torch.exp(-((grid[:, None] - row_nodes[None]) ** 2) / (2 * sigma**2))
        density += kernel @ row_weights
    density /= vectors * sigma * math.sqrt(2 * math.pi)
    return SpectralDensity(grid=grid, density=density, nodes=all_nodes, weights=all_weights, sigma=sigma)


def plot_spectral_density(density: SpectralDensity, log_scale: bool = True) -> Figure:
    """Plot the density against the eigenvalue (log-scaled density by default, as Ghorbani et al. do)."""
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    values = density.density.clamp_min(1e-12) if log_scale else density.density
    axes.plot(density.grid.numpy(), values.numpy())
    if log_scale:
        axes.set_yscale("log")
    axes.set_xlabel("eigenvalue")
    axes.set_ylabel("density")
    axes.set_title(f"Hessian spectral density (SLQ, σ = {density.sigma:.3g})")
    figure.tight_layout()
    return figure
