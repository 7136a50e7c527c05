"""Newton: one step on quadratics, quadratic convergence, float64 textbook references, protocol errors."""

import math

import numpy as np
import pytest
import torch

from descentlab.optim import Newton
from reference.newton import levenberg_marquardt_iterates, newton_direction, newton_iterates

rng = np.random.default_rng(0)

# A quadratic 0.5 theta^T A theta - b^T theta over a (2, 3) and a (4,) tensor.
SHAPES = [(2, 3), (4,)]
M = rng.normal(size=(10, 10))
A = M @ M.T + np.eye(10)
B_VECTOR = rng.normal(size=10)

# Logistic regression with an L2 term (unique minimiser) on overlapping classes.
X = rng.normal(size=(40, 3))
LABELS = np.where(X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=40) > 0, 1.0, -1.0)
RIDGE = 0.05
X_WITH_BIAS = np.hstack([X, np.ones((40, 1))])

COS_DIRECTION = np.array([0.5, -1.0, 0.8])


def _tensors(theta, shapes):
    sizes = [math.prod(shape) for shape in shapes]
    parts = np.split(np.asarray(theta, dtype=np.float64), np.cumsum(sizes)[:-1])
    return [torch.tensor(part.reshape(shape), requires_grad=True) for part, shape in zip(parts, shapes)]


def _flat(tensors):
    return np.concatenate([t.detach().numpy().reshape(-1) for t in tensors])


def _vector(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


# Each problem: torch loss of the flat vector, numpy gradient, numpy Hessian, start, tensor shapes.
def quadratic_loss(theta):
    return 0.5 * theta @ torch.tensor(A) @ theta - torch.tensor(B_VECTOR) @ theta


def exp_loss(x):
    return (torch.exp(x) - 2 * x).sum()


def quartic_loss(x):
    return 0.25 * (x @ x) ** 2 + torch.tensor([0.3, -1.0, 0.5, 2.0], dtype=torch.float64) @ x


def quartic_gradient(x):
    return (x @ x) * x + np.array([0.3, -1.0, 0.5, 2.0])


def quartic_hessian(x):
    return (x @ x) * np.eye(len(x)) + 2 * np.outer(x, x)


def logistic_loss(theta):
    margins = torch.tensor(LABELS) * (torch.tensor(X_WITH_BIAS) @ theta)
    return torch.nn.functional.softplus(-margins).mean() + 0.5 * RIDGE * theta @ theta


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def logistic_gradient(theta):
    s = _sigmoid(-LABELS * (X_WITH_BIAS @ theta))
    return -X_WITH_BIAS.T @ (LABELS * s) / len(LABELS) + RIDGE * theta


def logistic_hessian(theta):
    s = _sigmoid(-LABELS * (X_WITH_BIAS @ theta))
    return X_WITH_BIAS.T @ (X_WITH_BIAS * (s * (1 - s))[:, None]) / len(LABELS) + RIDGE * np.eye(4)


def cos_loss(x):  # indefinite Hessian -diag(cos x) + a a^T at most points
    return torch.cos(x).sum() + 0.5 * (torch.tensor(COS_DIRECTION) @ x) ** 2


def cos_gradient(x):
    return -np.sin(x) + COS_DIRECTION * (COS_DIRECTION @ x)


def cos_hessian(x):
    return -np.diag(np.cos(x)) + np.outer(COS_DIRECTION, COS_DIRECTION)


def _run(loss_of_vector, theta0, shapes, steps, **hyper):
    tensors = _tensors(theta0, shapes)
    optimizer = Newton(tensors, **hyper)

    def closure():
        return loss_of_vector(_vector(tensors))

    iterates = [_flat(tensors)]
    for _ in range(steps):
        optimizer.step(closure)
        iterates.append(_flat(tensors))
    return iterates, optimizer


@pytest.mark.parametrize("mode", ["exact", "cg"])
def test_one_step_minimises_a_quadratic(mode):
    theta0 = rng.normal(size=10)
    iterates, optimizer = _run(quadratic_loss, theta0, SHAPES, 1, mode=mode, cg_tolerance=1e-13)
    minimiser = np.linalg.solve(A, B_VECTOR)
    np.testing.assert_allclose(iterates[1], minimiser, rtol=1e-9, atol=1e-11)
    gradient0 = A @ theta0 - B_VECTOR
    assert optimizer.last_gradient_norm == pytest.approx(np.linalg.norm(gradient0), rel=1e-12)
    # On a quadratic the Newton decrement squared is twice the suboptimality: g^T A^-1 g = 2 (f - f*).
    f = lambda t: 0.5 * t @ A @ t - B_VECTOR @ t  # noqa: E731
    assert optimizer.last_newton_decrement**2 == pytest.approx(2 * (f(theta0) - f(minimiser)), rel=1e-9)
    assert optimizer.last_step_norm == pytest.approx(np.linalg.norm(minimiser - theta0), rel=1e-9)
    assert not optimizer.last_negative_curvature
    if mode == "cg":
        assert 1 <= optimizer.last_cg_iterations <= 10


def test_converges_quadratically_on_exp_minus_linear():
    # f = sum(exp(x) - 2x): x* = log 2 and e_{k+1} / e_k^2 -> f'''/(2 f'') = 1/2.
    iterates, _ = _run(exp_loss, [1.2, 0.3, 0.9], [(3,)], 6)
    errors = [np.abs(x - math.log(2)).max() for x in iterates]
    assert errors[5] < 1e-13
    ratios = [errors[k + 1] / errors[k] ** 2 for k in range(5) if errors[k] > 1e-6]
    assert len(ratios) >= 3
    assert max(ratios) < 1.0, ratios
    assert ratios[-1] == pytest.approx(0.5, abs=0.05)


def test_converges_quadratically_on_logistic_regression():
    solution = newton_iterates(logistic_gradient, logistic_hessian, np.zeros(4), 30)[-1]
    assert np.linalg.norm(logistic_gradient(solution)) < 1e-14
    iterates, _ = _run(logistic_loss, np.zeros(4), [(3,), (1,)], 7)
    errors = [np.linalg.norm(x - solution) for x in iterates]
    assert errors[0] > 0.5 and errors[-1] < 1e-12
    ratios = [errors[k + 1] / errors[k] ** 2 for k in range(6) if errors[k] > 1e-6]
    assert len(ratios) >= 3
    assert max(ratios) < 5.0, ratios
    assert [errors[k + 1] / errors[k] for k in range(3)] == sorted(
        [errors[k + 1] / errors[k] for k in range(3)], reverse=True
    )  # the linear rate keeps improving: faster than linear


@pytest.mark.parametrize(
    ("loss", "gradient", "hessian", "theta0", "hyper"),
    [
        (quartic_loss, quartic_gradient, quartic_hessian, [1.0, 0.5, -0.7, 1.2], {}),
        (quartic_loss, quartic_gradient, quartic_hessian, [1.0, 0.5, -0.7, 1.2], dict(lr=0.7, damping=0.3)),
        (logistic_loss, logistic_gradient, logistic_hessian, [0.5, -0.5, 0.1, 0.2], dict(damping=0.01)),
        (cos_loss, cos_gradient, cos_hessian, [0.4, -1.3, 2.0], dict(mode="saddle-free", damping=0.5)),
        (cos_loss, cos_gradient, cos_hessian, [0.4, -1.3, 2.0], dict(mode="saddle-free", lr=0.5)),
        (logistic_loss, logistic_gradient, logistic_hessian, [0.5, -0.5, 0.1, 0.2], dict(mode="cg")),
        (
            quartic_loss,
            quartic_gradient,
            quartic_hessian,
            [1.0, 0.5, -0.7, 1.2],
            dict(mode="cg", damping=0.2),
        ),
        (cos_loss, cos_gradient, cos_hessian, [0.4, -1.3, 2.0], dict(mode="cg", damping=0.1)),
    ],
    ids=[
        "exact",
        "exact-lr-damping",
        "exact-logistic",
        "saddle-free",
        "saddle-free-lr",
        "cg",
        "cg-damping",
        "cg-indefinite",
    ],
)
def test_iterates_match_the_float64_reference(loss, gradient, hessian, theta0, hyper):
    n = len(theta0)
    shapes = [(1,), (n - 1,)]
    reference_hyper = {k: v for k, v in hyper.items() if k in ("lr", "damping", "mode")}
    expected = newton_iterates(gradient, hessian, theta0, 5, **reference_hyper)
    actual, _ = _run(loss, theta0, shapes, 5, **hyper)
    np.testing.assert_allclose(np.array(actual), np.array(expected), rtol=1e-9, atol=1e-12)
    assert np.linalg.norm(expected[-1] - expected[0]) > 0.1  # the reference really moved


@pytest.mark.parametrize("damping", [0.0, 0.5, 3.0])
def test_damping_solves_the_levenberg_marquardt_system(damping):
    theta0 = np.array([0.8, -0.4, 1.1, 0.2])
    iterates, _ = _run(quartic_loss, theta0, [(2,), (2,)], 1, damping=damping)
    H, g = quartic_hessian(theta0), quartic_gradient(theta0)
    expected = np.linalg.solve(H + damping * np.eye(4), -g)
    np.testing.assert_allclose(iterates[1] - theta0, expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(expected, newton_direction(H, g, damping), rtol=1e-12)


def _saddle_loss(theta):  # x^2 - y^2: a saddle at the origin
    return theta[0] ** 2 - theta[1] ** 2


def test_saddle_free_moves_away_from_the_saddle_that_plain_newton_jumps_onto():
    start = [0.5, 0.3]
    plain, plain_optimizer = _run(_saddle_loss, start, [(2,)], 1)
    np.testing.assert_allclose(plain[1], [0.0, 0.0], atol=1e-15)  # H^-1 g = theta: onto the saddle
    assert plain_optimizer.last_negative_curvature
    free, free_optimizer = _run(_saddle_loss, start, [(2,)], 1, mode="saddle-free")
    np.testing.assert_allclose(free[1], [0.0, 0.6], atol=1e-15)  # -|H|^-1 g = (-x, +y)
    assert free_optimizer.last_negative_curvature
    assert free[1][0] ** 2 - free[1][1] ** 2 < start[0] ** 2 - start[1] ** 2


def test_cg_uses_the_gradient_on_negative_curvature_in_the_first_iteration():
    start = np.array([0.3, 0.5])  # the first CG direction -g has curvature 8 (x^2 - y^2) < 0
    iterates, optimizer = _run(_saddle_loss, start, [(2,)], 1, mode="cg", lr=0.1)
    np.testing.assert_allclose(iterates[1], start - 0.1 * np.array([0.6, -1.0]), rtol=1e-14)
    assert optimizer.last_negative_curvature and optimizer.last_cg_iterations == 1


def _pseudo_huber(x):  # Newton from |x| > 1 overshoots: x <- -x^3
    return torch.sqrt(1 + x**2).sum()


def test_armijo_decreases_the_loss_where_the_full_newton_step_overshoots():
    start = np.array([2.0, -1.5])
    value = lambda x: np.sqrt(1 + x**2).sum()  # noqa: E731
    full, _ = _run(_pseudo_huber, start, [(1,), (1,)], 1)
    np.testing.assert_allclose(full[1], -(start**3), rtol=1e-12)
    assert value(full[1]) > value(start)
    searched, optimizer = _run(_pseudo_huber, start, [(1,), (1,)], 1, line_search="armijo")
    alpha = optimizer.last_step_size
    assert 0 < alpha < 1 and optimizer.last_evaluations >= 2
    direction = -start * (1 + start**2)  # -H^-1 g, coordinate-wise
    gradient = start / np.sqrt(1 + start**2)
    np.testing.assert_allclose(searched[1], start + alpha * direction, rtol=1e-12)
    assert value(searched[1]) <= value(start) + 1e-4 * alpha * gradient @ direction
    converged, _ = _run(_pseudo_huber, start, [(1,), (1,)], 10, line_search="armijo")
    assert np.abs(converged[-1]).max() < 1e-10


def test_armijo_falls_back_to_the_gradient_when_newton_points_uphill():
    start = [0.3, 0.5]  # g^T H^-1 g = 2 (x^2 - y^2) < 0: the Newton direction ascends
    iterates, optimizer = _run(_saddle_loss, start, [(2,)], 1, line_search="armijo")
    assert optimizer.last_direction == "gradient"
    assert iterates[1][0] ** 2 - iterates[1][1] ** 2 < start[0] ** 2 - start[1] ** 2


def test_adaptive_damping_matches_marquardts_rule():
    start = np.array([2.0, -1.5])
    value = lambda x: np.sqrt(1 + x**2).sum()  # noqa: E731
    gradient = lambda x: x / np.sqrt(1 + x**2)  # noqa: E731
    hessian = lambda x: np.diag((1 + x**2) ** -1.5)  # noqa: E731
    expected, dampings = levenberg_marquardt_iterates(value, gradient, hessian, start, 12, 1e-3, 10.0)
    tensors = _tensors(start, [(1,), (1,)])
    optimizer = Newton(tensors, damping=1e-3, adaptive_damping=True)
    accepted = []
    for k in range(12):
        optimizer.step(lambda: _pseudo_huber(_vector(tensors)))
        np.testing.assert_allclose(_flat(tensors), expected[k + 1], rtol=1e-10, atol=1e-14)
        assert optimizer.param_groups[0]["damping"] == pytest.approx(dampings[k + 1], rel=1e-12)
        accepted.append(optimizer.last_step_accepted)
    assert not all(accepted) and any(accepted)  # both branches of the rule were exercised
    assert [value(x) for x in expected] == sorted([value(x) for x in expected], reverse=True)
    assert np.abs(expected[-1]).max() < 1e-6


def test_schedulers_and_state_dict_reach_lr_and_damping():
    theta0 = rng.normal(size=10)
    tensors = _tensors(theta0, SHAPES)
    optimizer = Newton(tensors, damping=0.5, adaptive_damping=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5**step)
    optimizer.step(lambda: quadratic_loss(_vector(tensors)))  # lr 1, a quadratic: accepted
    scheduler.step()
    theta1 = _flat(tensors)
    np.testing.assert_allclose(theta1 - theta0, np.linalg.solve(A + 0.5 * np.eye(10), B_VECTOR - A @ theta0))
    assert optimizer.param_groups[0]["damping"] == pytest.approx(0.05)
    restored = Newton(_tensors(theta1, SHAPES), damping=0.5, adaptive_damping=True)
    restored.load_state_dict(optimizer.state_dict())
    assert restored.param_groups[0]["damping"] == pytest.approx(0.05)
    optimizer.step(lambda: quadratic_loss(_vector(tensors)))  # lr 0.5 from the scheduler
    expected = 0.5 * np.linalg.solve(A + 0.05 * np.eye(10), B_VECTOR - A @ theta1)
    np.testing.assert_allclose(_flat(tensors) - theta1, expected, rtol=1e-9, atol=1e-12)


def test_hessian_of_a_module_matches_torch_autograd_functional(monkeypatch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    inputs, targets = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    params = list(model.parameters())
    start = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of(vector):
        return (
            torch.func.functional_call(model, _unflatten(vector, params), (inputs,))
            .sub(targets)
            .pow(2)
            .mean()
        )

    hessian = torch.autograd.functional.hessian(loss_of, start)
    gradient = torch.autograd.functional.jacobian(loss_of, start)
    expected = start - torch.linalg.solve(
        hessian + 0.1 * torch.eye(len(start), dtype=torch.float64), gradient
    )

    def closure():
        return torch.nn.functional.mse_loss(model(inputs), targets)

    Newton(model.parameters(), damping=0.1).step(closure)
    torch.testing.assert_close(torch.cat([p.detach().reshape(-1) for p in params]), expected)

    # The same step through the one-row-at-a-time fallback, as when vmap cannot batch the graph.
    original_grad = torch.autograd.grad

    def grad_without_batching(*args, **kwargs):
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("batching rule not implemented (simulated)")
        return original_grad(*args, **kwargs)

    with torch.no_grad():
        for param, part in zip(params, _unflatten(start, params).values()):
            param.copy_(part)
    monkeypatch.setattr(torch.autograd, "grad", grad_without_batching)
    Newton(model.parameters(), damping=0.1).step(closure)
    torch.testing.assert_close(torch.cat([p.detach().reshape(-1) for p in params]), expected)


def _unflatten(vector, params):
    names = ["0.weight", "0.bias", "2.weight", "2.bias"]
    parts = torch.split(vector, [p.numel() for p in params])
    return {name: part.view_as(p) for name, part, p in zip(names, parts, params)}


def test_too_large_a_hessian_says_how_large_and_what_to_use():
    model = torch.nn.Linear(100, 60)  # 6060 float32 parameters
    size = f"{6060**2 * 4 / 2**20:.1f} MiB"
    for mode in ("exact", "saddle-free"):
        with pytest.raises(ValueError, match="6060 parameters") as error:
            Newton(model.parameters(), mode=mode)
        assert size in str(error.value) and "mode='cg'" in str(error.value)
    inputs, targets = torch.randn(8, 100), torch.randn(8, 60)
    optimizer = Newton(model.parameters(), mode="cg", cg_max_iterations=3)
    before = torch.nn.functional.mse_loss(model(inputs), targets)
    optimizer.step(lambda: torch.nn.functional.mse_loss(model(inputs), targets))
    assert torch.nn.functional.mse_loss(model(inputs), targets) < before
    assert 1 <= optimizer.last_cg_iterations <= 3


def test_closure_misuse_gets_a_clear_error():
    model = torch.nn.Linear(3, 1)
    inputs, targets = torch.randn(5, 3), torch.randn(5, 1)
    optimizer = Newton(model.parameters())

    def calls_backward():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match=r"called loss.backward\(\)"):
        optimizer.step(calls_backward)
    with pytest.raises(RuntimeError, match=r"not loss.item\(\)"):
        optimizer.step(lambda: torch.nn.functional.mse_loss(model(inputs), targets).item())

    def without_graph():
        with torch.no_grad():
            return torch.nn.functional.mse_loss(model(inputs), targets)

    with pytest.raises(RuntimeError, match="grad_fn is None"):
        optimizer.step(without_graph)
    with pytest.raises(ValueError, match="needs a closure"):
        optimizer.step()


def test_singular_hessian_asks_for_damping():
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="damping > 0"):
        Newton([x]).step(lambda: x[0] ** 2)  # no curvature along x[1]
    Newton([x], damping=1.0).step(lambda: x[0] ** 2)  # LM damping makes it solvable
    np.testing.assert_allclose(x.detach().numpy(), [1 - 2 / 3, 2.0], rtol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(mode="newton"), "unknown Newton mode 'newton'"),
        (dict(damping=-1.0), "damping must be >= 0, got -1.0"),
        (dict(lr=0.0), "lr must be > 0, got 0.0"),
        (dict(line_search="wolfe"), "line_search must be None or 'armijo', got 'wolfe'"),
        (dict(max_hessian_params=0), "max_hessian_params must be an integer >= 1, got 0"),
        (dict(cg_tolerance=0.0), "cg_tolerance must be > 0, got 0.0"),
        (dict(cg_max_iterations=0), "cg_max_iterations must be None or an integer >= 1, got 0"),
        (dict(shrink=1.0), "shrink must be in"),
        (dict(adaptive_damping=True), "needs damping > 0 to start"),
        (dict(adaptive_damping=True, damping=1.0, line_search="armijo"), "choose either"),
        (dict(damping_factor=1.0), "damping_factor must be > 1, got 1.0"),
    ],
)
def test_bad_hyperparameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Newton([torch.zeros(2, requires_grad=True)], **kwargs)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="single param group"):
        Newton(
            [
                {"params": [torch.zeros(1, requires_grad=True)]},
                {"params": [torch.zeros(1, requires_grad=True)]},
            ]
        )
    with pytest.raises(ValueError, match="real parameters only"):
        Newton([torch.zeros(2, dtype=torch.complex64, requires_grad=True)])
    with pytest.raises(ValueError, match="one dtype and device"):
        Newton([torch.zeros(2, requires_grad=True), torch.zeros(2, dtype=torch.float64, requires_grad=True)])
