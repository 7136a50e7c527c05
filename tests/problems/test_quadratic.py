"""The 100-D noisy quadratic: spectrum, exact value, gradient noise of covariance H / B."""

import math

import pytest
import torch

from descentlab.problems import get_problem
from descentlab.problems.quadratic import CURVATURES


def test_spectrum_is_log_spaced_over_three_decades():
    assert CURVATURES.shape == (100,)
    ratios = CURVATURES[1:] / CURVATURES[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 1000 ** (1 / 99)))
    assert CURVATURES[0].item() == pytest.approx(1e-3) and CURVATURES[-1].item() == pytest.approx(1.0)


def test_evaluate_gives_the_noise_free_quadratic_and_distance():
    task = get_problem("noisy-quadratic").task(seed=0)
    x = task.model.x.detach().double()
    expected = sum(0.5 * h * value**2 for h, value in zip(CURVATURES.tolist(), x.tolist()))
    metrics = task.evaluate()
    assert metrics["loss"] == pytest.approx(expected, rel=1e-5)
    assert metrics["distance"] == pytest.approx(math.sqrt(sum(v * v for v in x.tolist())), rel=1e-5)


def test_gradient_is_hessian_times_x_plus_noise_of_covariance_h_over_b():
    batch_size = 4
    task = get_problem("noisy-quadratic").task(seed=1, batch_size=batch_size)
    x = task.model.x
    samples = []
    for _ in range(3000):
        x.grad = None
        task.loss(next(task.batches)).backward()
        samples.append(x.grad.double().clone())
    samples = torch.stack(samples)
    exact = CURVATURES * x.detach().double()
    noise_std = (CURVATURES / batch_size).sqrt()
    standard_error = noise_std / math.sqrt(len(samples))
    assert ((samples.mean(0) - exact).abs() < 5 * standard_error).all()
    torch.testing.assert_close(samples.std(0), noise_std, rtol=0.1, atol=0)


def test_same_seed_same_start_and_noise():
    problem = get_problem("noisy-quadratic")
    a, b, c = problem.task(seed=2), problem.task(seed=2), problem.task(seed=3)
    assert torch.equal(a.model.x, b.model.x) and not torch.equal(a.model.x, c.model.x)
    assert torch.equal(next(a.batches), next(b.batches))


def test_adam_makes_progress():
    problem = get_problem("noisy-quadratic")
    task = problem.task(seed=0)
    before = task.evaluate()["loss"]
    optimizer = torch.optim.Adam(task.model.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        task.loss(next(task.batches)).backward()
        optimizer.step()
    assert task.evaluate()["loss"] < 0.5 * before
