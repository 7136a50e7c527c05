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


# --- lr, dtypes, layouts and the last_search record ------------------------------------------------
# f(x) = 0.5 x^T A x - c^T x: along d = -g the loss is h(alpha) = f0 - alpha g^T g + 0.5 alpha^2 g^T A g,
# minimised at alpha* = g^T g / g^T A g (closed form, float64).
QUADRATIC_A = np.diag([1.0, 4.0, 9.0])
QUADRATIC_C = np.array([1.0, -2.0, 0.5])
QUADRATIC_X0 = np.array([2.0, 1.0, -1.0])


def _quadratic(x):
    a = torch.tensor(QUADRATIC_A, dtype=x.dtype)
    c = torch.tensor(QUADRATIC_C, dtype=x.dtype)
    return 0.5 * x @ a @ x - c @ x


def _h(alpha):
    g = QUADRATIC_A @ QUADRATIC_X0 - QUADRATIC_C
    x = QUADRATIC_X0 - alpha * g
    return 0.5 * x @ QUADRATIC_A @ x - QUADRATIC_C @ x


def _alpha_star():
    g = QUADRATIC_A @ QUADRATIC_X0 - QUADRATIC_C
    return (g @ g) / (g @ QUADRATIC_A @ g)


def _quadratic_optimizer(**kwargs):
    x = torch.tensor(QUADRATIC_X0, dtype=torch.float64, requires_grad=True)
    optimizer = LineSearchGD([x], **kwargs)
    return x, optimizer, _closure_for(optimizer, lambda: _quadratic(x))


def _golden_reference(h, high, tolerance):
    """Golden section on [0, high] (no expansion), written out in float64: the brackets it visits."""
    ratio = (5**0.5 - 1) / 2
    low = 0.0
    b, c = high - ratio * (high - low), low + ratio * (high - low)
    brackets = [(low, b, c, high)]
    while high - low > tolerance:
        if h(b) < h(c):
            high, c = c, b
            b = high - ratio * (high - low)
        else:
            low, b = b, c
            c = low + ratio * (high - low)
        brackets.append((low, b, c, high))
    return brackets, 0.5 * (low + high)


@pytest.mark.parametrize("lr", [1.0, 0.4])
def test_golden_lr_scales_the_initial_bracket_and_the_record_holds_it(lr):
    # alpha* = 0.146 < 0.618 * lr * max_step, so the search needs no doubling.
    x, optimizer, closure = _quadratic_optimizer(method="golden", max_step=0.8, tolerance=1e-6, lr=lr)
    optimizer.step(closure)
    expected_brackets, expected_alpha = _golden_reference(_h, lr * 0.8, 1e-6)
    record = optimizer.last_search
    assert record.method == "golden" and record.initial_step == pytest.approx(lr * 0.8, rel=1e-15)
    assert record.brackets[0][3] == pytest.approx(lr * 0.8, rel=1e-15)
    np.testing.assert_allclose(record.brackets, expected_brackets, rtol=1e-12, atol=1e-15)
    assert record.chosen_step == pytest.approx(expected_alpha, rel=1e-10)
    assert record.chosen_step == pytest.approx(_alpha_star(), abs=1e-6)
    np.testing.assert_allclose(record.trial_losses, [_h(a) for a in record.trial_steps], rtol=1e-12)
    assert record.loss_before == pytest.approx(_h(0.0), rel=1e-14)
    g = QUADRATIC_A @ QUADRATIC_X0 - QUADRATIC_C
    assert record.slope == pytest.approx(-(g @ g), rel=1e-14)
    assert optimizer.last_evaluations == len(record.trial_steps) and optimizer.step_sizes == [
        record.chosen_step
    ]
    np.testing.assert_allclose(x.detach().numpy(), QUADRATIC_X0 - record.chosen_step * g, rtol=1e-14)


def test_golden_with_a_small_lr_still_reaches_the_closed_form_minimiser_by_doubling():
    _, optimizer, closure = _quadratic_optimizer(method="golden", tolerance=1e-10, lr=0.01)
    optimizer.step(closure)
    record = optimizer.last_search
    assert record.trial_steps[:2] == pytest.approx([0.01, 0.01 * (5**0.5 - 1) / 2], rel=1e-15)
    # Comparing losses resolves alpha only to about sqrt(float64 eps) * alpha* near a smooth minimum.
    assert record.chosen_step == pytest.approx(_alpha_star(), abs=1e-7)


@pytest.mark.parametrize("lr", [1.0, 0.05, 3.0])
def test_armijo_backtracks_from_lr_times_max_step(lr):
    _, optimizer, closure = _quadratic_optimizer(method="armijo", max_step=2.0, shrink=0.5, lr=lr)
    optimizer.step(closure)
    g = QUADRATIC_A @ QUADRATIC_X0 - QUADRATIC_C
    expected, alpha = [], lr * 2.0
    while True:  # first alpha_0 * 0.5^k with sufficient decrease, from the closed-form h
        expected.append(alpha)
        if _h(alpha) <= _h(0.0) - 1e-4 * alpha * (g @ g):
            break
        alpha *= 0.5
    record = optimizer.last_search
    assert record.trial_steps == pytest.approx(expected, rel=1e-15)
    assert record.chosen_step == pytest.approx(expected[-1], rel=1e-15) and record.brackets == []


def test_strong_wolfe_first_trial_is_lr_times_max_step_and_slopes_are_recorded():
    _, optimizer, closure = _quadratic_optimizer(method="strong-wolfe", max_step=1.0, lr=0.02)
    optimizer.step(closure)
    record = optimizer.last_search
    g = QUADRATIC_A @ QUADRATIC_X0 - QUADRATIC_C
    assert record.trial_steps[0] == pytest.approx(0.02, rel=1e-15)
    # h'(alpha) = -g^T g + alpha g^T A g
    expected_slopes = [-(g @ g) + a * (g @ QUADRATIC_A @ g) for a in record.trial_steps]
    np.testing.assert_allclose(record.trial_slopes, expected_slopes, rtol=1e-12)
    assert abs(expected_slopes[-1]) <= 0.9 * (g @ g)


def test_lr_zero_takes_no_step_and_evaluates_nothing():
    x, optimizer, closure = _quadratic_optimizer(lr=0.0)
    optimizer.step(closure)
    assert optimizer.last_step_size == 0.0 and optimizer.last_search.trial_steps == []
    np.testing.assert_array_equal(x.detach().numpy(), QUADRATIC_X0)


@pytest.mark.parametrize("schedule", ["step", "cosine"])
def test_torch_schedulers_drive_the_initial_step(schedule):
    _, optimizer, closure = _quadratic_optimizer(method="armijo", max_step=1.0)
    if schedule == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
        expected_lrs = [1.0, 1.0, 0.5, 0.5, 0.25]
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4, eta_min=0.1)
        expected_lrs = [0.1 + 0.45 * (1 + np.cos(np.pi * k / 4)) for k in range(5)]
    initial_steps = []
    for _ in range(5):
        optimizer.step(closure)
        initial_steps.append(optimizer.last_search.initial_step)
        scheduler.step()
    np.testing.assert_allclose(initial_steps, expected_lrs, rtol=1e-12)
    assert scheduler.get_last_lr()[0] == optimizer.param_groups[0]["lr"]


def test_float32_parameters_stay_float32_beside_float64_ones():
    single = torch.tensor([1.0, -2.0], dtype=torch.float32, requires_grad=True)
    double = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    optimizer = LineSearchGD([single, double], method="golden", tolerance=1e-6)

    def loss():
        return (single.double() ** 2).sum() + 3 * (double**2).sum()

    optimizer.step(_closure_for(optimizer, loss))
    assert single.dtype == torch.float32 and double.dtype == torch.float64
    # g = (2, -4, 3), Hessian diag(2, 2, 6): alpha* = g^T g / g^T H g = 29 / 94.
    shrink = 1.0 - 2.0 * 29.0 / 94.0
    torch.testing.assert_close(single.detach(), torch.tensor([shrink, -2.0 * shrink]), rtol=0, atol=1e-5)
    assert double.item() == pytest.approx(0.5 * (1.0 - 6.0 * 29.0 / 94.0), abs=1e-5)


def test_non_contiguous_parameter_is_updated_in_place():
    base = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]], dtype=torch.float64)
    weight = torch.nn.Parameter(base.t())  # a transposed view: strides (1, 3)
    assert not weight.is_contiguous()
    target = torch.arange(6.0, dtype=torch.float64).reshape(3, 2)
    optimizer = LineSearchGD([weight], method="golden", tolerance=1e-12)
    optimizer.step(_closure_for(optimizer, lambda: ((weight - target) ** 2).sum()))
    # f = |W - T|^2 has alpha* = 1/2 and reaches T in one exact line search.
    torch.testing.assert_close(weight.detach(), target, rtol=0, atol=1e-9)
    assert weight.stride() == (1, 3)


def test_complex_parameters_are_searched_as_real_pairs():
    target = torch.tensor([1.0 + 2.0j, -0.5 + 0.25j], dtype=torch.complex128)
    w = torch.zeros(2, dtype=torch.complex128, requires_grad=True)
    optimizer = LineSearchGD([w], method="golden", tolerance=1e-12)
    optimizer.step(_closure_for(optimizer, lambda: ((w - target).abs() ** 2).sum()))
    # torch's gradient of |w - t|^2 is 2 (w - t) in the real-pair sense, so alpha* = 1/2 as for reals.
    assert w.dtype == torch.complex128
    torch.testing.assert_close(w.detach(), target, rtol=0, atol=1e-9)
    assert optimizer.last_step_size == pytest.approx(0.5, abs=1e-9)


def test_second_param_group_and_bad_lr_are_refused():
    x = torch.zeros(2, requires_grad=True)
    optimizer = LineSearchGD([x])
    with pytest.raises(ValueError, match="single param group"):
        optimizer.add_param_group({"params": [torch.zeros(1, requires_grad=True)]})
    with pytest.raises(ValueError, match="lr must be >= 0"):
        LineSearchGD([x], lr=-1.0)


def test_state_dict_saved_without_lr_loads_as_lr_one():
    _, optimizer, _ = _quadratic_optimizer(lr=0.5)
    saved = optimizer.state_dict()
    del saved["param_groups"][0]["lr"]
    optimizer.load_state_dict(saved)
    assert optimizer.param_groups[0]["lr"] == 1.0


def test_sparse_gradients_get_a_clear_error():
    embedding = torch.nn.Embedding(5, 2, sparse=True)
    optimizer = LineSearchGD(embedding.parameters())

    def closure():
        optimizer.zero_grad()
        loss = embedding(torch.tensor([1, 3])).pow(2).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="LineSearchGD does not support sparse gradients"):
        optimizer.step(closure)
