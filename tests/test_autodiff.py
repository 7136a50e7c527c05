"""descentlab.autodiff: Hessian-vector products and dense Hessians against torch.autograd.functional."""

import gc
import weakref

import pytest
import torch

from descentlab.autodiff import ROWS_PER_PASS, HessianVectorProduct, pointwise_gradient_and_hessian
from descentlab.optim import Newton


def network_loss(dtype=torch.float64):
    """A tiny tanh network with an unused parameter, and its loss as a function of one flat vector."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(12, 3, generator=generator, dtype=dtype)
    targets = torch.randn(12, 1, generator=generator, dtype=dtype)
    shapes = [(3, 4), (4,), (4, 1), (2,)]  # the last one never enters the loss
    params = [torch.randn(s, generator=generator, dtype=dtype, requires_grad=True) for s in shapes]

    def loss_of(first, bias, second, unused):
        return (torch.tanh(inputs @ first + bias) @ second - targets).square().mean()

    def loss_of_flat(flat):
        pieces = torch.split(flat, [p.numel() for p in params])
        return loss_of(*(piece.view_as(p) for piece, p in zip(pieces, params)))

    return params, loss_of, loss_of_flat


def test_products_and_dense_hessian_match_torch_functional_hessian():
    params, loss_of, loss_of_flat = network_loss()
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    expected = torch.autograd.functional.hessian(loss_of_flat, flat)
    hessian = HessianVectorProduct(loss_of(*params), params)
    assert hessian.dim == flat.numel() == 22 and hessian.products == 0
    torch.testing.assert_close(hessian.dense(), expected, rtol=1e-10, atol=1e-12)
    assert torch.equal(hessian.dense()[-2:], torch.zeros(2, 22, dtype=torch.float64))  # unused parameter
    vector = torch.randn(22, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(hessian(vector), expected @ vector, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        hessian.gradient, torch.autograd.functional.jacobian(loss_of_flat, flat), rtol=1e-12, atol=1e-14
    )
    assert hessian.products == 2 * 22 + 1


def test_products_keep_the_vectors_dtype_and_dense_the_requested_dtype():
    params, loss_of, _ = network_loss(torch.float32)
    hessian = HessianVectorProduct(loss_of(*params), params)
    vector = torch.ones(22, dtype=torch.float64)
    assert hessian(vector).dtype == torch.float64 and hessian.dense().dtype == torch.float32
    dense64 = hessian.dense(torch.float64)
    assert dense64.dtype == torch.float64 and torch.equal(dense64, dense64.T)
    torch.testing.assert_close(hessian(vector), dense64 @ vector, rtol=1e-5, atol=1e-6)


def test_a_loss_linear_in_the_parameters_has_a_zero_hessian():
    weight = torch.randn(5, requires_grad=True)
    hessian = HessianVectorProduct((3.0 * weight).sum(), [weight])
    assert torch.equal(hessian.gradient, torch.full((5,), 3.0))
    assert torch.equal(hessian(torch.ones(5)), torch.zeros(5))
    assert torch.equal(hessian.dense(), torch.zeros(5, 5))


def test_the_row_by_row_fallback_gives_the_batched_result(monkeypatch):
    count = ROWS_PER_PASS + 6  # two passes, the second one partial
    weight = torch.linspace(-1.0, 1.0, count, dtype=torch.float64, requires_grad=True)
    # sum_i w_i^4 / 12 + (sum_i w_i)^2 / 2: H = diag(w_i^2) + all-ones, a closed form
    loss = weight.pow(4).sum() / 12 + weight.sum().square() / 2
    expected = torch.diag(weight.detach() ** 2) + torch.ones(count, count, dtype=torch.float64)
    batched = HessianVectorProduct(loss, [weight]).dense()
    original_grad = torch.autograd.grad

    def grad_without_batching(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("batching rule not implemented (simulated)")
        return original_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", grad_without_batching)
    loss = weight.pow(4).sum() / 12 + weight.sum().square() / 2
    row_by_row = HessianVectorProduct(loss, [weight]).dense()
    torch.testing.assert_close(batched, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(row_by_row, expected, rtol=1e-12, atol=1e-12)


def test_a_vector_of_the_wrong_shape_is_a_value_error():
    params, loss_of, _ = network_loss()
    hessian = HessianVectorProduct(loss_of(*params), params)
    with pytest.raises(ValueError, match=r"flat vector of 22 entries .*got shape \(21,\)"):
        hessian(torch.ones(21))


class SavedTensorTracker:
    """Weak references to every tensor autograd saves while active: alive means a graph still holds it."""

    def __init__(self):
        self.references = []

    def pack(self, tensor):
        holder = type("Holder", (), {})()
        holder.tensor = tensor.detach()  # keeping the tensor itself would tie a cycle through its grad_fn
        self.references.append(weakref.ref(holder))
        return holder

    def alive(self):
        gc.collect()
        return sum(reference() is not None for reference in self.references)


def test_dropping_the_object_frees_the_double_backward_graph():
    params, loss_of, _ = network_loss()
    tracker = SavedTensorTracker()
    with torch.autograd.graph.saved_tensors_hooks(tracker.pack, lambda holder: holder.tensor):
        hessian = HessianVectorProduct(loss_of(*params), params)
        dense = hessian.dense()
    assert tracker.alive() > 0
    del hessian
    assert tracker.alive() == 0 and dense.grad_fn is None


def test_newton_frees_the_double_backward_graph_before_the_line_search_evaluates():
    params, loss_of, _ = network_loss()
    tracker = SavedTensorTracker()
    alive_during_line_search = []

    def closure():
        if not torch.is_grad_enabled():  # the line search's evaluations
            alive_during_line_search.append(tracker.alive())
            return loss_of(*params)
        with torch.autograd.graph.saved_tensors_hooks(tracker.pack, lambda holder: holder.tensor):
            return loss_of(*params)

    Newton(params, mode="exact", damping=1.0, line_search="armijo").step(closure)
    assert alive_during_line_search and alive_during_line_search == [0] * len(alive_during_line_search)


def test_pointwise_gradients_and_hessians_match_the_closed_form_at_every_point():
    def function(points):  # f(x, y, z) = x^2 y + x sin z, point by point
        x, y, z = points.unbind(-1)
        return x.square() * y + x * torch.sin(z)

    points = torch.randn(4, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x, y, z = points.unbind(-1)
    zero = torch.zeros_like(x)
    expected_gradient = torch.stack([2 * x * y + torch.sin(z), x.square(), x * torch.cos(z)], dim=-1)
    expected_hessian = torch.stack(
        [
            torch.stack([2 * y, 2 * x, torch.cos(z)], dim=-1),
            torch.stack([2 * x, zero, zero], dim=-1),
            torch.stack([torch.cos(z), zero, -x * torch.sin(z)], dim=-1),
        ],
        dim=-2,
    )
    gradient, hessian = pointwise_gradient_and_hessian(function, points)
    assert gradient.shape == (4, 5, 3) and hessian.shape == (4, 5, 3, 3)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(hessian, expected_hessian, rtol=1e-14, atol=1e-14)
    # a linear function has no second-order graph at all: zero Hessians, not an error
    _, flat = pointwise_gradient_and_hessian(lambda p: p.sum(-1), points)
    assert torch.equal(flat, torch.zeros(4, 5, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"must map shape \(\.\.\., 3\) to \(\.\.\.\)"):
        pointwise_gradient_and_hessian(lambda p: p, points)
