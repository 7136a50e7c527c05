"""Textbook models: values from the book's notebooks, closed-form optima, Gabor minima."""

import numpy as np
import pytest
import torch

from descentlab.problems import get_problem
from descentlab.problems.textbook import (
    GABOR_MINIMA,
    GABOR_OPTIMUM,
    GABOR_X,
    GABOR_Y,
    LINEAR_X,
    LINEAR_Y,
    SALARY,
    SALARY_YEARS,
)

DATA = {"linear-regression": (LINEAR_X, LINEAR_Y), "salary": (SALARY_YEARS, SALARY)}


def loss_gradient(problem, phi):
    phi = torch.tensor(phi, dtype=torch.float64, requires_grad=True)
    problem.function(phi).backward()
    return phi.grad


def test_losses_match_the_values_printed_by_the_udl_notebooks():
    # Notebook 6.1 prints "Correct loss = 12.367" and notebook 6.2 "Correct loss = 16.419" at (0.6, -0.2).
    phi = torch.tensor([0.6, -0.2], dtype=torch.float64)
    assert float(get_problem("linear-regression").function(phi)) == pytest.approx(12.367, abs=5e-4)
    assert float(get_problem("gabor").function(phi)) == pytest.approx(16.419, abs=5e-4)


@pytest.mark.parametrize("name", ["linear-regression", "salary"])
def test_line_fits_match_numpy_lstsq(name):
    problem = get_problem(name)
    function_x, function_y = (np.array(values) for values in DATA[name])
    design = np.stack([np.ones_like(function_x), function_x], axis=1)
    solution, residual, _, _ = np.linalg.lstsq(design, function_y, rcond=None)
    np.testing.assert_allclose(problem.minima[0], solution, rtol=1e-10)
    assert problem.optimum == pytest.approx(residual[0], rel=1e-10)


def test_salary_data_is_the_five_person_example():
    assert SALARY_YEARS == (5.0, 3.0, 8.0, 1.4, 10.1)
    assert SALARY == (5500.0, 2300.0, 7600.0, 1800.0, 11400.0)
    np.testing.assert_allclose(
        get_problem("salary").minima[0],
        np.linalg.lstsq(np.stack([np.ones(5), SALARY_YEARS], 1), np.array(SALARY), rcond=None)[0],
    )


@pytest.mark.parametrize("minimum", GABOR_MINIMA)
def test_gabor_minima_are_strict_local_minima(minimum):
    problem = get_problem("gabor")
    assert torch.linalg.vector_norm(loss_gradient(problem, minimum)) < 1e-9
    hessian = torch.autograd.functional.hessian(problem.function, torch.tensor(minimum, dtype=torch.float64))
    assert torch.linalg.eigvalsh(hessian).min() > 0


def test_gabor_global_minimum_is_lowest_on_a_grid_and_matches_the_optimum():
    problem = get_problem("gabor")
    assert float(problem.function(torch.tensor(GABOR_MINIMA[0], dtype=torch.float64))) == pytest.approx(
        GABOR_OPTIMUM, rel=1e-12
    )
    (x0, x1), (y0, y1) = problem.bounds
    grid = torch.stack(
        torch.meshgrid(
            torch.linspace(x0, x1, 401, dtype=torch.float64),
            torch.linspace(y0, y1, 401, dtype=torch.float64),
            indexing="ij",
        ),
        dim=-1,
    )
    assert float(problem.function(grid).min()) >= GABOR_OPTIMUM
    values = [float(problem.function(torch.tensor(m, dtype=torch.float64))) for m in GABOR_MINIMA[1:]]
    assert min(values) > problem.target > GABOR_OPTIMUM


def test_gabor_matches_the_book_formula_written_out():
    problem = get_problem("gabor")
    data_x, data_y = np.array(GABOR_X), np.array(GABOR_Y)
    phi0, phi1 = -1.5, 8.5
    z = phi0 + 0.06 * phi1 * data_x
    expected = np.sum((np.sin(z) * np.exp(-(z**2) / 32) - data_y) ** 2)
    assert float(problem.function(torch.tensor([phi0, phi1], dtype=torch.float64))) == pytest.approx(expected)


def test_minibatch_loss_is_an_unbiased_estimate_and_epochs_cover_the_data():
    problem = get_problem("gabor")
    task = problem.task(seed=0, batch_size=5)
    assert task.steps_per_epoch == 6
    seen, total = [], 0.0
    for _ in range(task.steps_per_epoch):
        batch = next(task.batches)
        seen.extend(batch[0].tolist())
        total += task.loss(batch).item() / task.steps_per_epoch
    assert sorted(seen) == pytest.approx(sorted(GABOR_X))
    assert total == pytest.approx(task.evaluate()["loss"], rel=1e-5)


def test_minibatch_order_depends_on_the_seed_only():
    def order(seed):
        task = get_problem("gabor").task(seed=seed, batch_size=5)
        return torch.cat([next(task.batches)[0] for _ in range(12)])

    assert torch.equal(order(3), order(3))
    assert not torch.equal(order(3), order(4))


def test_data_order_gives_the_stored_order_every_epoch_and_bad_orders_are_named():
    task = get_problem("salary").task(seed=3, batch_size=1, options={"order": "data"})
    seen = [float(next(task.batches)[0]) for _ in range(2 * len(SALARY_YEARS))]
    assert seen == [*SALARY_YEARS, *SALARY_YEARS]
    with pytest.raises(
        ValueError, match=r"'order' of problem 'salary' must be shuffled or data, got 'sorted'"
    ):
        get_problem("salary").task(batch_size=1, options={"order": "sorted"})


def test_bad_batch_size_names_the_allowed_range():
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 5\].*got 9"):
        get_problem("salary").task(seed=0, batch_size=9)


def test_gradient_descent_reaches_the_global_gabor_basin_from_the_notebook_start():
    problem = get_problem("gabor")
    task = problem.task(seed=0)
    optimizer = torch.optim.Adam(task.model.parameters(), lr=0.05)
    for _ in range(problem.budget_steps):
        optimizer.zero_grad()
        task.loss(next(task.batches)).backward()
        optimizer.step()
    assert task.evaluate()["loss"] <= problem.target


def book_gabor_loss_and_gradient(phi):
    """Loss and gradient written from the book's formulas (chain rule through z = phi0 + 0.06 phi1 x)."""
    x, y = np.array(GABOR_X), np.array(GABOR_Y)
    z = phi[0] + 0.06 * phi[1] * x
    residual = np.sin(z) * np.exp(-(z**2) / 32) - y
    dprediction_dz = (np.cos(z) - np.sin(z) * z / 16) * np.exp(-(z**2) / 32)
    gradient = np.array(
        [np.sum(2 * residual * dprediction_dz), np.sum(2 * residual * dprediction_dz * 0.06 * x)]
    )
    return np.sum(residual**2), gradient


def test_gabor_gradient_matches_the_hand_derived_derivative():
    problem = get_problem("gabor")
    for phi in [(-1.5, 8.5), (2.0, 15.0), (-7.0, 20.0)]:
        _, expected = book_gabor_loss_and_gradient(np.array(phi))
        np.testing.assert_allclose(loss_gradient(problem, phi).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_scipy_from_a_grid_of_starts_finds_no_minimum_we_do_not_list():
    from scipy.optimize import minimize

    (x0, x1), (y0, y1) = get_problem("gabor").bounds
    stored = np.array(GABOR_MINIMA)
    matched = set()
    for start_phi0 in np.linspace(x0, x1, 6):
        for start_phi1 in np.linspace(y0, y1, 6):
            result = minimize(
                book_gabor_loss_and_gradient, [start_phi0, start_phi1], jac=True, method="BFGS",
                options={"gtol": 1e-10},
            )  # fmt: skip
            inside = x0 <= result.x[0] <= x1 and y0 <= result.x[1] <= y1
            if inside and np.linalg.norm(result.jac) < 1e-6:
                distances = np.linalg.norm(stored - result.x, axis=1)
                assert distances.min() < 1e-4, f"unlisted minimum {result.x}"
                matched.add(int(distances.argmin()))
    assert len(matched) >= 4, "the grid search should land in several different basins"
