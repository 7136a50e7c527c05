import numpy as np
import pytest
import torch
from torch import nn

from descentlab.analysis import (
    HessianOperator,
    HessianTooLargeError,
    exact_hessian,
    hessian_eigenvalues,
    hessian_vector_product,
)
from reference.finite_difference import finite_difference_hessian


def test_exact_hessian_of_linear_regression_is_two_xtx_over_n(linear_regression):
    hessian = exact_hessian(linear_regression.model, linear_regression.loss).numpy()
    np.testing.assert_allclose(hessian, linear_regression.closed_form_hessian(), rtol=1e-12, atol=1e-12)


def test_hessian_eigenvalues_match_numpy_eigh_on_linear_regression(linear_regression):
    eigenvalues = hessian_eigenvalues(linear_regression.model, linear_regression.loss).numpy()
    expected = np.linalg.eigh(linear_regression.closed_form_hessian())[0]
    np.testing.assert_allclose(eigenvalues, expected, rtol=1e-10)


def test_exact_hessian_of_a_network_matches_finite_differences(tiny_network):
    hessian = exact_hessian(tiny_network.model, tiny_network.loss).numpy()
    reference = finite_difference_hessian(tiny_network.model, tiny_network.loss)
    np.testing.assert_allclose(hessian, reference, atol=1e-7)
    np.testing.assert_allclose(
        hessian_eigenvalues(tiny_network.model, tiny_network.loss).numpy(),
        np.linalg.eigh(reference)[0],
        atol=1e-7,
    )


def test_hessian_vector_product_equals_hessian_times_vector(tiny_network):
    reference = finite_difference_hessian(tiny_network.model, tiny_network.loss)
    operator = HessianOperator(tiny_network.model, tiny_network.loss)
    vector = torch.randn(operator.dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    np.testing.assert_allclose(operator.matvec(vector).numpy(), reference @ vector.numpy(), atol=1e-7)
    pieces = [vector[:12].reshape(4, 3), vector[12:16], vector[16:24].reshape(2, 4), vector[24:]]
    products = hessian_vector_product(tiny_network.model, tiny_network.loss, pieces)
    assert [product.shape for product in products] == [p.shape for p in tiny_network.model.parameters()]
    flat = torch.cat([product.reshape(-1) for product in products]).numpy()
    np.testing.assert_allclose(flat, reference @ vector.numpy(), atol=1e-7)


def test_a_loss_linear_in_the_parameters_has_a_zero_hessian():
    model = nn.Linear(3, 2).double()
    inputs = torch.randn(5, 3, dtype=torch.float64)
    hessian = exact_hessian(model, lambda: model(inputs).sum())
    assert torch.equal(hessian, torch.zeros(8, 8, dtype=torch.float64))


def test_too_large_hessian_error_gives_size_and_alternatives():
    model = nn.Linear(99, 50)  # 5000 parameters: 25,000,000 float64 entries = 190.7 MiB
    expected = r"5,000 parameters.*25,000,000 entries \(190\.7 MiB"
    with pytest.raises(HessianTooLargeError, match=expected) as error:
        exact_hessian(model, lambda: model(torch.ones(1, 99)).square().sum(), max_parameters=4096)
    assert "top_eigenvalues" in str(error.value) and "max_parameters=4,096" in str(error.value)
    assert isinstance(error.value, ValueError)


def test_loss_closure_must_return_a_scalar(tiny_network):
    with pytest.raises(ValueError, match=r"scalar tensor, got \(16, 2\)"):
        HessianOperator(tiny_network.model, lambda: tiny_network.model(tiny_network.inputs))
