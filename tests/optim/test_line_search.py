"""LineSearchGD: exact minimisers of 1-D quadratics, Armijo/Wolfe conditions, UDL fig. 6.1."""

import numpy as np
import pytest
import torch

from descentlab.optim import LineSearchGD


def _closure_for(optimizer, loss_fn):
    def closure():
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize(("a", "b", "x0"), [(2.0, 3.0, -1.0), (0.1, -4.0, 5.0), (7.0, 0.5, 0.0)])
def test_golden_section_finds_the_exact_minimiser_of_a_1d_quadratic(a, b, x0):
    x = torch.tensor([x0], dtype=torch.float64, requires_grad=True)
    optimizer = LineSearchGD([x], method="golden", max_step=1.0, tolerance=1e-12)
    optimizer.step(_closure_for(optimizer, lambda: a * ((x - b) ** 2).sum()))
    # Along d = -f'(x0) the exact minimiser is x = b, reached at alpha* = 1 / (2a).
    assert x.item() == pytest.approx(b, abs=1e-9)
    assert optimizer.last_step_size == pytest.approx(1.0 / (2.0 * a), rel=1e-8)


def test_armijo_step_satisfies_sufficient_decrease_and_is_the_first_accepted():
    x = torch.tensor([3.0, -1.0], dtype=torch.float64, requires_grad=True)
    scales = torch.tensor([1.0, 10.0], dtype=torch.float64)

    def f():
        return (scales * x**2).sum()

    optimizer = LineSearchGD([x], method="armijo", max_step=1.0, c1=1e-4, shrink=0.5)
    start = x.detach().clone()
    value0 = f().item()
    grad = 2 * scales * start
    optimizer.step(_closure_for(optimizer, f))
    alpha = optimizer.last_step_size

    # Independent check of the accepted step and of its predecessor being rejected.
    def value_at(step):
        return (scales * (start - step * grad) ** 2).sum().item()

    assert value_at(alpha) <= value0 - 1e-4 * alpha * (grad @ grad).item()
    assert value_at(2 * alpha) > value0 - 1e-4 * 2 * alpha * (grad @ grad).item()


def test_strong_wolfe_step_satisfies_both_conditions():
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)

    def rosenbrock():
        return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2

    optimizer = LineSearchGD([x], method="strong-wolfe", max_step=1.0, c1=1e-4, c2=0.9)
    for _ in range(5):
        start = x.detach().clone()
        closure = _closure_for(optimizer, rosenbrock)
        value0 = closure().item()
        grad = x.grad.detach().clone()
        optimizer.step(closure)
        alpha = optimizer.last_step_size
        probe = (start - alpha * grad).requires_grad_()
        value = (1 - probe[0]) ** 2 + 100 * (probe[1] - probe[0] ** 2) ** 2
        (grad_alpha,) = torch.autograd.grad(value, probe)
        slope0 = -(grad @ grad).item()
        assert value.item() <= value0 + 1e-4 * alpha * slope0
        assert abs((grad_alpha @ -grad).item()) <= 0.9 * abs(slope0)


def test_linear_regression_converges_in_a_few_line_searched_steps():
    # UDL fig. 6.1: gradient descent with line search on 1-D linear regression.
    rng = np.random.default_rng(1)
    inputs = rng.uniform(0, 2, 12)
    outputs = 0.8 + 0.5 * inputs + 0.05 * rng.normal(size=12)
    phi = torch.tensor([0.1, 1.8], dtype=torch.float64, requires_grad=True)
    X, y = torch.tensor(inputs), torch.tensor(outputs)
    optimizer = LineSearchGD([phi], method="golden", max_step=2.0, tolerance=1e-10)

    def loss():
        return ((phi[0] + phi[1] * X - y) ** 2).sum()

    for _ in range(40):
        optimizer.step(_closure_for(optimizer, loss))
    design = np.stack([np.ones_like(inputs), inputs], axis=1)
    solution, *_ = np.linalg.lstsq(design, outputs, rcond=None)
    np.testing.assert_allclose(phi.detach().numpy(), solution, atol=1e-6)
    assert len(optimizer.step_sizes) == 40 and all(s > 0 for s in optimizer.step_sizes[:5])


def test_bad_arguments_raise_clear_errors():
    x = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="unknown line-search method"):
        LineSearchGD([x], method="bisect")
    with pytest.raises(ValueError, match="c1"):
        LineSearchGD([x], c1=0.95, c2=0.9)
    with pytest.raises(ValueError, match="closure"):
        LineSearchGD([x]).step()
