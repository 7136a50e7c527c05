"""2-D test functions: minima, gradients, noise and the task contract."""

import math

import pytest
import torch

from descentlab.problems import get_problem
from descentlab.problems.functions2d import FUNCTIONS, add_gradient_noise

WITH_MINIMA = [function for function in FUNCTIONS if function.minima]


def gradient(formula, point: torch.Tensor) -> torch.Tensor:
    point = point.clone().requires_grad_(True)
    formula(point).backward()
    return point.grad


@pytest.mark.parametrize("function", WITH_MINIMA, ids=lambda f: f.name)
def test_minima_are_stationary_with_the_optimum_value(function):
    for minimum in function.minima:
        point = torch.tensor(minimum, dtype=torch.float64)
        assert float(function.formula(point)) == pytest.approx(function.optimum, abs=1e-20)
        assert torch.linalg.vector_norm(gradient(function.formula, point)) < 1e-12
        hessian = torch.autograd.functional.hessian(function.formula, point)
        assert torch.linalg.eigvalsh(hessian).min() > 0, "a listed minimum must be a strict local minimum"


@pytest.mark.parametrize("function", WITH_MINIMA, ids=lambda f: f.name)
def test_no_grid_point_is_below_the_optimum(function):
    (x0, x1), (y0, y1) = function.bounds
    grid = torch.stack(
        torch.meshgrid(
            torch.linspace(x0, x1, 201, dtype=torch.float64),
            torch.linspace(y0, y1, 201, dtype=torch.float64),
            indexing="ij",
        ),
        dim=-1,
    )
    assert float(function.formula(grid).min()) >= function.optimum


def test_closed_forms_at_hand_computed_points():
    point = torch.tensor([2.0, -1.0], dtype=torch.float64)
    values = {f.name: float(f.formula(point)) for f in FUNCTIONS}
    assert values["bowl"] == pytest.approx(4 / 20 + 1)
    assert values["ravine"] == pytest.approx(4 / 200 + 1)
    assert values["rosenbrock"] == pytest.approx(1 + 100 * 25)
    assert values["beale"] == pytest.approx((1.5 - 4) ** 2 + (2.25) ** 2 + (2.625 - 4) ** 2)
    assert values["himmelblau"] == pytest.approx((4 - 1 - 11) ** 2 + (2 + 1 - 7) ** 2)
    assert values["rastrigin"] == pytest.approx(20 + 4 - 10 + 1 - 10)
    assert values["saddle"] == pytest.approx(3.0)


@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.name)
def test_gradients_match_central_finite_differences(function):
    generator = torch.Generator().manual_seed(3)
    (x0, x1), (y0, y1) = function.bounds
    for _ in range(5):
        point = torch.stack(
            [x0 + (x1 - x0) * torch.rand((), generator=generator, dtype=torch.float64),
             y0 + (y1 - y0) * torch.rand((), generator=generator, dtype=torch.float64)]
        )  # fmt: skip
        step = 1e-6
        numeric = torch.stack(
            [(function.formula(point + step * e) - function.formula(point - step * e)) / (2 * step)
             for e in torch.eye(2, dtype=torch.float64)]
        )  # fmt: skip
        torch.testing.assert_close(gradient(function.formula, point), numeric, rtol=1e-6, atol=1e-5)


def test_function_is_vectorised_over_leading_dimensions():
    problem = get_problem("rosenbrock")
    points = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(0))
    values = problem.function(points)
    assert values.shape == (3, 4)
    assert values[1, 2] == problem.function(points[1, 2])


def test_task_starts_at_start_and_evaluates_loss_and_distance():
    problem = get_problem("bowl")
    task = problem.task(seed=0)
    (parameter,) = list(task.model.parameters())
    assert parameter.shape == (2,)
    assert parameter.tolist() == [-7.0, 2.0]
    metrics = task.evaluate()
    assert metrics["loss"] == pytest.approx(49 / 20 + 4)
    assert metrics["distance"] == pytest.approx(math.hypot(7, 2))
    loss = task.loss(next(task.batches))
    loss.backward()
    torch.testing.assert_close(parameter.grad, torch.tensor([-7 / 10, 4.0]))


def test_ravine_hessian_is_its_stated_constant_diagonal():
    from descentlab.problems.functions2d import RAVINE_CURVATURES, ravine

    for point in ([-7.0, 2.0], [0.0, 0.0], [3.0, -1.5]):
        hessian = torch.autograd.functional.hessian(ravine, torch.tensor(point, dtype=torch.float64))
        torch.testing.assert_close(hessian, torch.diag(torch.tensor([2 / 200, 2.0], dtype=torch.float64)))
    assert RAVINE_CURVATURES == (2 / 200, 2.0)


def test_himmelblau_distance_is_to_the_nearest_of_four_minima():
    task = get_problem("himmelblau").task(seed=0)
    with torch.no_grad():
        task.model.point.copy_(torch.tensor([-3.7, -3.2]))
    assert task.evaluate()["distance"] == pytest.approx(math.hypot(0.0793, 0.0832), abs=1e-3)


def test_saddle_has_no_optimum_and_reports_distance_to_the_saddle():
    problem = get_problem("saddle")
    assert problem.optimum is None and problem.minima == ()
    task = problem.task(seed=0)
    metrics = task.evaluate()
    assert set(metrics) == {"loss", "distance_to_saddle"}
    optimizer = torch.optim.SGD(task.model.parameters(), lr=0.1)
    for _ in range(problem.budget_steps):
        optimizer.zero_grad()
        task.loss(next(task.batches)).backward()
        optimizer.step()
    assert task.evaluate()["loss"] <= problem.target, "gradient descent escapes along y within the budget"


def test_gradient_noise_leaves_the_value_and_adds_the_noise_to_the_gradient():
    point = torch.tensor([0.3, -0.4], requires_grad=True)
    noise = torch.tensor([1.5, -2.0])
    value = add_gradient_noise(get_problem("bowl").function(point), point, noise)
    assert value.item() == get_problem("bowl").function(point).item()
    value.backward()
    torch.testing.assert_close(point.grad, torch.tensor([0.03, -0.8]) + noise)


def test_noisy_gradients_are_unbiased_and_have_the_stated_spread():
    problem = get_problem("noisy-rosenbrock")
    task = problem.task(seed=5)
    point = task.model.point
    exact = gradient(problem.function, point.detach())
    samples = []
    for _ in range(4000):
        point.grad = None
        task.loss(next(task.batches)).backward()
        samples.append(point.grad.clone())
    samples = torch.stack(samples)
    std = 2.0  # rosenbrock's noise_std
    # The mean of 4000 draws has standard error std / sqrt(4000) ~ 0.032; allow 5 of them.
    torch.testing.assert_close(samples.mean(0), exact, rtol=0, atol=5 * std / math.sqrt(4000))
    torch.testing.assert_close(samples.std(0), torch.full((2,), std), rtol=0.05, atol=0)


def test_noise_depends_on_the_seed_only():
    def noise_draws(seed):
        task = get_problem("noisy-bowl").task(seed=seed)
        return torch.stack([next(task.batches) for _ in range(5)])

    assert torch.equal(noise_draws(1), noise_draws(1))
    assert not torch.equal(noise_draws(1), noise_draws(2))


def test_full_batch_functions_reject_a_batch_size():
    with pytest.raises(ValueError, match="full-batch 2-D function; batch_size must be None, got 8"):
        get_problem("beale").task(seed=0, batch_size=8)


def test_default_set_is_tagged():
    for name in ("bowl", "rosenbrock", "beale", "himmelblau"):
        assert "default" in get_problem(name).tags
    assert "default" not in get_problem("rastrigin").tags
