"""SWATS against an independent float64 loop of the paper's Algorithm 1."""

import numpy as np
import pytest
import torch

from descentlab.optim import SWATS
from reference.swats import swats_reference

SCALES = np.array([1.0, 3.0, 0.5, 2.0, 1.5])


def gradient(x):
    return SCALES * x + 0.1 * x**3


def _run_ours(x0, steps, block_numel=None, **hyper):
    shapes = [(2,), (3,)]  # two tensors in one group: the test runs over the whole group
    tensors = [torch.tensor(part, dtype=torch.float64, requires_grad=True) for part in np.split(x0, [2])]
    optimizer = SWATS(tensors, **hyper)
    if block_numel is not None:
        optimizer.block_numel = block_numel
    for _ in range(steps):
        flat = np.concatenate([t.detach().numpy() for t in tensors])
        for tensor, part in zip(tensors, np.split(gradient(flat), [2])):
            tensor.grad = torch.tensor(part)
        optimizer.step()
    assert [t.shape for t in tensors] == [torch.Size(s) for s in shapes]
    return np.concatenate([t.detach().numpy() for t in tensors]), optimizer


# block_numel 2 cuts the (3,) tensor into cache blocks of 2 and 1 elements beside the (2,) tensor's
# block: the dot products of the switch test are then added over the blocks (UpdateSums).
@pytest.mark.parametrize("block_numel", [None, 2])
@pytest.mark.parametrize(
    ("lr", "beta2", "eps"), [(0.02, 0.99, 1e-5), (0.005, 0.999, 1e-6), (0.01, 0.99, 1e-5)]
)
def test_switch_step_and_iterates_match_algorithm_1(lr, beta2, eps, block_numel):
    x0 = np.array([1.0, -2.0, 0.5, 1.5, -1.0])
    hyper = dict(lr=lr, betas=(0.9, beta2), eps=eps)
    expected, switch_step, Lambda = swats_reference(x0, gradient, 300, lr, 0.9, beta2, eps)
    assert switch_step is not None and 2 < switch_step < 290, "the problem must switch mid-run"
    actual, optimizer = _run_ours(x0, 300, block_numel, **hyper)
    assert optimizer.switch_steps() == [switch_step]
    assert optimizer.sgd_learning_rates()[0] == pytest.approx(Lambda, rel=1e-10)
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-13)


def test_no_switch_before_condition_holds():
    x0 = np.array([1.0, -2.0, 0.5, 1.5, -1.0])
    _, switch_step, _ = swats_reference(x0, gradient, 10, 0.05, 0.9, 0.99, 1e-9)
    _, optimizer = _run_ours(x0, 10, lr=0.05, betas=(0.9, 0.99), eps=1e-9)
    assert switch_step is None and optimizer.switch_steps() == [None]


def test_per_tensor_variant_switches_tensors_separately():
    x0 = np.array([1.0, -2.0, 0.5, 1.5, -1.0])
    actual, optimizer = _run_ours(x0, 300, lr=0.02, betas=(0.9, 0.99), variant="per-tensor", switch_rtol=1e-3)

    # The gradient is separable, so each tensor's block can be run on its own.
    expected_x, expected_steps = [], []
    for block, scales in zip(np.split(x0, [2]), np.split(SCALES, [2])):
        x, step, _ = swats_reference(
            block, lambda x, s=scales: s * x + 0.1 * x**3, 300, 0.02, 0.9, 0.99, 1e-9, switch_rtol=1e-3
        )
        expected_x.append(x)
        expected_steps.append(float(step or 0))
    steps = [optimizer.state[p]["switch_step"].item() for p in optimizer.param_groups[0]["params"]]
    assert steps == expected_steps and expected_steps[0] > 2 and expected_steps[1] == 0
    np.testing.assert_allclose(actual, np.concatenate(expected_x), rtol=1e-10, atol=1e-13)


def test_group_needs_every_gradient():
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    optimizer = SWATS([a, b])
    a.grad = torch.ones(2)
    with pytest.raises(ValueError, match="every parameter of a group"):
        optimizer.step()


def test_step_with_closure_runs_the_closure_first_after_zero_grad():
    x0 = np.array([1.0, -2.0, 0.5, 1.5, -1.0])
    expected, switch_step, _ = swats_reference(x0, gradient, 300, 0.02, 0.9, 0.99, 1e-5)
    tensors = [torch.tensor(part, dtype=torch.float64, requires_grad=True) for part in np.split(x0, [2])]
    scales = [torch.tensor(part) for part in np.split(SCALES, [2])]
    optimizer = SWATS(tensors, lr=0.02, betas=(0.9, 0.99), eps=1e-5)

    def closure():
        optimizer.zero_grad()  # grads are None when step() is entered: the closure must run first
        # gradient of 0.5 s x^2 + 0.025 x^4 is s x + 0.1 x^3, the reference's gradient
        loss = sum((0.5 * s * t**2 + 0.025 * t**4).sum() for s, t in zip(scales, tensors))
        loss.backward()
        return loss

    for _ in range(300):
        loss = optimizer.step(closure)
    assert torch.is_tensor(loss)
    assert optimizer.switch_steps() == [switch_step]
    np.testing.assert_allclose(np.concatenate([t.detach().numpy() for t in tensors]), expected, rtol=1e-10)


def test_switch_steps_has_one_entry_per_group_and_per_tensor_in_per_tensor_mode():
    x0 = np.array([1.0, -2.0, 0.5, 1.5, -1.0])
    _, optimizer = _run_ours(x0, 300, lr=0.02, betas=(0.9, 0.99), variant="per-tensor", switch_rtol=1e-3)
    first_switch = optimizer.state[optimizer.param_groups[0]["params"][0]]["switch_step"].item()
    assert first_switch > 2  # see test_per_tensor_variant_switches_tensors_separately
    assert optimizer.switch_steps() == [{0: int(first_switch), 1: None}]
    rates = optimizer.sgd_learning_rates()[0]
    assert rates[1] is None and rates[0] > 0

    # Two "paper" groups: one entry each, the second still in its Adam phase.
    a = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([0.5, 1.5, -1.0], dtype=torch.float64, requires_grad=True)
    optimizer = SWATS([{"params": [a]}, {"params": [b], "lr": 0.0}], lr=0.02, betas=(0.9, 0.99), eps=1e-5)
    for _ in range(300):
        for tensor, scales in ((a, SCALES[:2]), (b, SCALES[2:])):
            x = tensor.detach().numpy()
            tensor.grad = torch.tensor(scales * x + 0.1 * x**3)
        optimizer.step()
    steps = optimizer.switch_steps()
    assert len(steps) == 2 and isinstance(steps[0], int) and steps[1] is None


@pytest.mark.parametrize(("variant", "blocks"), [("paper", 3), ("per-tensor", 1)])
def test_only_the_paper_variant_is_cut_into_cache_blocks(variant, blocks):
    # The per-tensor variant tests each tensor inside the chain, which a slice of it cannot do.
    tensors = [torch.ones(2, dtype=torch.float64, requires_grad=True), torch.ones(3, dtype=torch.float64)]
    tensors[1].requires_grad_()
    optimizer = SWATS(tensors, variant=variant)
    optimizer.block_numel = 2
    calls = []
    apply = optimizer._apply
    optimizer._apply = lambda group, bucket, step: (
        calls.append(len(bucket.params)) or apply(group, bucket, step)
    )
    for tensor in tensors:
        tensor.grad = torch.full_like(tensor, 0.5)
    optimizer.step()
    assert len(calls) == blocks
