import numpy as np
import pytest
import torch

from descentlab.analysis import (
    HessianOperator,
    hutchinson_trace,
    lanczos,
    plot_spectral_density,
    save_figure,
    spectral_density,
    top_eigenvalues,
)
from reference.finite_difference import finite_difference_hessian


class DenseOperator:
    """A symmetric matrix seen only through products, counting them."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = torch.as_tensor(matrix, dtype=torch.float64)
        self.dim = self.matrix.shape[0]

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        return self.matrix @ vector


def matrix_with_spectrum(eigenvalues, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    return basis @ np.diag(eigenvalues) @ basis.T


def test_full_lanczos_recovers_every_eigenvalue_with_an_orthonormal_basis():
    matrix = matrix_with_spectrum(np.linspace(-3, 5, 40))
    result = lanczos(DenseOperator(matrix), steps=40, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(result.ritz_pairs()[0].numpy(), np.linalg.eigh(matrix)[0], atol=1e-10)
    gram = (result.basis @ result.basis.T).numpy()
    np.testing.assert_allclose(gram, np.eye(40), atol=1e-12)


def test_top_k_with_few_steps_finds_separated_extremes():
    spectrum = np.concatenate([[100.0, 50.0, 25.0, -40.0], np.random.default_rng(1).uniform(0, 1, 196)])
    operator = DenseOperator(matrix_with_spectrum(spectrum))
    top = top_eigenvalues(operator, k=3, steps=30)
    np.testing.assert_allclose(top.values.numpy(), [100.0, 50.0, 25.0], rtol=1e-9)
    assert (top.residual_norms < 1e-6).all()
    vectors = top.vectors
    np.testing.assert_allclose((operator.matrix @ vectors[0]).numpy(), 100 * vectors[0].numpy(), atol=1e-6)
    smallest = top_eigenvalues(operator, k=1, steps=30, which="smallest")
    np.testing.assert_allclose(smallest.values.numpy(), [-40.0], rtol=1e-9)
    magnitude = top_eigenvalues(operator, k=2, steps=30, which="magnitude")
    np.testing.assert_allclose(magnitude.values.numpy(), [100.0, 50.0], rtol=1e-9)


def test_top_k_lanczos_eigenvalues_of_a_network_hessian_match_eigh(tiny_network):
    reference = np.linalg.eigh(finite_difference_hessian(tiny_network.model, tiny_network.loss))[0]
    operator = HessianOperator(tiny_network.model, tiny_network.loss)
    top = top_eigenvalues(operator, k=4, steps=operator.dim)
    np.testing.assert_allclose(top.values.numpy(), reference[::-1][:4], atol=1e-7)


def test_hutchinson_trace_is_within_a_few_percent_of_the_true_trace(linear_regression):
    true_trace = np.trace(linear_regression.closed_form_hessian())
    estimate = hutchinson_trace(HessianOperator(linear_regression.model, linear_regression.loss), samples=400)
    assert abs(estimate.estimate - true_trace) < 0.03 * true_trace
    assert abs(estimate.estimate - true_trace) < 4 * estimate.standard_error
    assert estimate.standard_error > 0


def test_hutchinson_trace_is_exact_for_a_diagonal_matrix():
    # v^T D v = sum(d_i v_i^2) = tr(D) for every Rademacher v: zero variance.
    estimate = hutchinson_trace(DenseOperator(np.diag([1.0, -2.0, 7.5])), samples=5)
    assert estimate.estimate == pytest.approx(6.5, abs=1e-12)
    assert estimate.standard_error == pytest.approx(0.0, abs=1e-12)


def test_spectral_density_matches_the_smoothed_true_spectrum(tmp_path):
    eigenvalues = np.concatenate([np.full(15, 0.0), np.full(10, 2.0), [10.0]])
    operator = DenseOperator(matrix_with_spectrum(eigenvalues, seed=2))
    density = spectral_density(operator, vectors=300, steps=26, sigma=0.3, seed=0)
    grid = density.grid.numpy()
    assert np.trapezoid(density.density.numpy(), grid) == pytest.approx(1.0, abs=1e-3)
    exact = np.exp(-((grid[:, None] - eigenvalues[None]) ** 2) / (2 * 0.3**2)).sum(1)
    exact /= len(eigenvalues) * 0.3 * np.sqrt(2 * np.pi)
    assert np.trapezoid(np.abs(density.density.numpy() - exact), grid) < 0.1
    # Three distinct eigenvalues: Lanczos stops after three steps and leaves the other nodes NaN.
    first_moment = float((density.weights * density.nodes.nan_to_num()).sum(1).mean())
    assert first_moment == pytest.approx(eigenvalues.mean(), rel=0.05)
    path = save_figure(plot_spectral_density(density), tmp_path / "density.png")
    assert path.stat().st_size > 1000


def test_bad_arguments_name_the_value():
    operator = DenseOperator(np.eye(3))
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\].*got 4"):
        top_eigenvalues(operator, k=4)
    with pytest.raises(ValueError, match=r"samples must be >= 2 .*got 1"):
        hutchinson_trace(operator, samples=1)
    with pytest.raises(ValueError, match=r"steps must be in \[1, 3\]"):
        lanczos(operator, steps=5)
