"""StepDiagnostics, the measurements behind both callbacks, against closed forms and the SWATS oracle."""

import numpy as np
import pytest
import torch

from descentlab.integrations.diagnostics import StepDiagnostics
from descentlab.optim import SWATS, Adam
from reference.swats import swats_reference


def test_adam_first_step_moves_each_coordinate_by_lr():
    # Adam's first step is lr * sign(g) (bias-corrected m / sqrt(v) = g / |g|, eps negligible).
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    diagnostics = StepDiagnostics(Adam([p], lr=0.01, eps=1e-300))
    gradient = torch.tensor([3.0, -1.0, 0.5, 2.0], dtype=torch.float64)
    p.grad = gradient.clone()
    diagnostics.optimizer.step()
    metrics = diagnostics.latest
    assert metrics["descentlab/group0/update_norm"] == pytest.approx(0.01 * 2.0)
    expected = 0.01 * gradient.abs().sum().item() / gradient.pow(2).sum().item()
    assert metrics["descentlab/group0/effective_step_size"] == pytest.approx(expected)
    assert metrics["descentlab/group0/grad_to_update_ratio"] == pytest.approx(gradient.norm().item() / 0.02)


def test_every_n_steps_measures_the_first_and_every_nth():
    p = torch.nn.Parameter(torch.zeros(2))
    diagnostics = StepDiagnostics(torch.optim.SGD([p], lr=0.1), every_n_steps=3)
    for _ in range(7):
        p.grad = torch.ones(2)
        diagnostics.optimizer.step()
    assert diagnostics.measured_steps == 3  # steps 1, 4, 7
    diagnostics.remove()
    diagnostics.optimizer.step()
    assert diagnostics.measured_steps == 3


def test_swats_switch_step_and_learned_rate_match_algorithm_1():
    scales = np.array([1.0, 3.0, 0.5, 2.0, 1.5])
    x0 = np.array([1.0, -2.0, 0.5, 1.5, -1.0])
    gradient = lambda x: scales * x + 0.1 * x**3  # noqa: E731
    _, switch_step, Lambda = swats_reference(x0, gradient, 300, 0.02, 0.9, 0.99, 1e-5)
    x = torch.tensor(x0, requires_grad=True)
    diagnostics = StepDiagnostics(SWATS([x], lr=0.02, betas=(0.9, 0.99), eps=1e-5))
    for _ in range(300):
        x.grad = torch.tensor(gradient(x.detach().numpy()))
        diagnostics.optimizer.step()
    assert diagnostics.latest["descentlab/swats/group0/switch_step"] == switch_step
    assert diagnostics.latest["descentlab/swats/group0/sgd_lr"] == pytest.approx(Lambda, rel=1e-10)


def test_wrappers_are_unwrapped_and_non_optimizers_refused():
    p = torch.nn.Parameter(torch.zeros(1))
    inner = torch.optim.SGD([p], lr=0.1)
    wrapper = type("Wrapper", (), {"optimizer": inner})()
    assert StepDiagnostics(wrapper).optimizer is inner
    with pytest.raises(TypeError, match=r"torch\.optim\.Optimizer"):
        StepDiagnostics(object())
    with pytest.raises(ValueError, match="every_n_steps"):
        StepDiagnostics(inner, every_n_steps=0)
