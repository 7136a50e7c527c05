"""LineSearchGD's step-size history travels in its state_dict, so trainer checkpoints resume it."""

import torch

from descentlab.optim import LineSearchGD


def quadratic_steps(optimizer, x, steps):
    for _ in range(steps):

        def closure():
            optimizer.zero_grad()
            loss = (torch.tensor([1.0, 4.0]) * x**2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)


def test_step_sizes_round_trip_through_state_dict():
    x = torch.tensor([1.0, 1.0], requires_grad=True)
    optimizer = LineSearchGD([x], method="armijo")
    quadratic_steps(optimizer, x, 3)
    saved = optimizer.state_dict()
    assert saved["step_sizes"] == optimizer.step_sizes and len(saved["step_sizes"]) == 3

    fresh = LineSearchGD([x], method="armijo")
    fresh.load_state_dict(saved)
    assert fresh.step_sizes == optimizer.step_sizes
    assert fresh.last_step_size == optimizer.step_sizes[-1]
    quadratic_steps(fresh, x, 1)
    assert fresh.step_sizes[:3] == saved["step_sizes"] and len(fresh.step_sizes) == 4


def test_a_state_dict_without_step_sizes_loads_with_an_empty_history():
    x = torch.tensor([1.0], requires_grad=True)
    old = LineSearchGD([x]).state_dict()
    del old["step_sizes"]
    optimizer = LineSearchGD([x])
    optimizer.load_state_dict(old)
    assert optimizer.step_sizes == [] and optimizer.last_step_size == 0.0
