"""The eager step's Python step counts against torch.optim, which reads its step tensors every step.

The engine keeps each parameter's count in Python while the step tensor is the one it last incremented
and nothing else changed it (its version counter says so); anything else must be read from the tensor.
Each test changes the counts another way and compares with torch.optim.Adam doing the same. The betas
make a wrong count move the parameters by percents (through the bias corrections); the tolerance is
1e-12 rather than 0 because ours scales by ``lr * (1 / (1 - beta1^t))`` where torch divides
``lr / (1 - beta1^t)``, which differ in the last bit at some counts in float64.
"""

from __future__ import annotations

import copy

import pytest
import torch
from optim_harness import seeded_tensors

import descentlab.optim as dl
from descentlab.optim._rules import increment_counts_, scalars

SHAPES = [(3, 2), (4,)]


def _params() -> list[torch.Tensor]:
    return seeded_tensors(SHAPES, 0, requires_grad=True)


def _gradients(step: int) -> list[torch.Tensor]:
    return seeded_tensors(SHAPES, 100 + step)


def _pair() -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    # betas near 1 make the bias corrections, and so the parameters, sensitive to every count
    hyper = {"lr": 0.1, "betas": (0.5, 0.9)}
    return dl.Adam(_params(), **hyper), torch.optim.Adam(_params(), foreach=True, **hyper)


def _steps(optimizers, first: int, count: int) -> None:
    for step in range(first, first + count):
        for optimizer in optimizers:
            for param, grad in zip(optimizer.param_groups[0]["params"], _gradients(step)):
                param.grad = grad.clone()
            optimizer.step()


def _assert_same(ours: torch.optim.Optimizer, theirs: torch.optim.Optimizer) -> None:
    for mine, torchs in zip(ours.param_groups[0]["params"], theirs.param_groups[0]["params"]):
        torch.testing.assert_close(mine, torchs, rtol=1e-12, atol=0)
        assert torch.equal(ours.state[mine]["step"], theirs.state[torchs]["step"])


CHANGES = {
    "fill_": lambda step: step.fill_(7.0),
    "add_": lambda step: step.add_(5),
    "copy_": lambda step: step.copy_(step * 2),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_step_count_changed_in_place_between_steps_is_read_from_the_tensor(change):
    ours, theirs = _pair()
    _steps((ours, theirs), 0, 3)
    for optimizer in (ours, theirs):
        for param in optimizer.param_groups[0]["params"]:
            CHANGES[change](optimizer.state[param]["step"])
    _steps((ours, theirs), 3, 3)
    _assert_same(ours, theirs)


def test_loading_an_earlier_state_dict_continues_from_its_counts():
    ours, theirs = _pair()
    _steps((ours, theirs), 0, 2)
    saved = [
        (
            copy.deepcopy(optimizer.state_dict()),
            [param.detach().clone() for param in optimizer.param_groups[0]["params"]],
        )
        for optimizer in (ours, theirs)
    ]
    _steps((ours, theirs), 2, 4)
    for optimizer, (state_dict, values) in zip((ours, theirs), saved):
        optimizer.load_state_dict(state_dict)
        with torch.no_grad():
            for param, value in zip(optimizer.param_groups[0]["params"], values):
                param.copy_(value)
    _steps((ours, theirs), 2, 3)
    _assert_same(ours, theirs)


def test_a_parameter_skipped_for_a_step_keeps_its_own_count():
    ours, theirs = _pair()
    _steps((ours, theirs), 0, 2)
    for optimizer in (ours, theirs):  # the second parameter gets no gradient for one step
        first, second = optimizer.param_groups[0]["params"]
        first.grad, second.grad = _gradients(2)[0].clone(), None
        optimizer.step()
    _steps((ours, theirs), 3, 2)
    _assert_same(ours, theirs)


def test_steps_under_inference_mode_match_torch():
    ours, theirs = _pair()
    with torch.inference_mode():
        _steps((ours, theirs), 0, 3)
    _assert_same(ours, theirs)


def test_a_deep_copy_continues_like_the_original():
    ours, theirs = _pair()
    _steps((ours, theirs), 0, 2)
    copied = copy.deepcopy(ours)
    _steps((copied, theirs), 2, 3)
    _assert_same(copied, theirs)


COUNT_DTYPES = {
    "float32": [torch.float32] * 3,
    "float64": [torch.float64] * 2,
    "bfloat16": [torch.bfloat16],
    "int64": [torch.int64] * 2,
    "mixed": [torch.float32, torch.int64, torch.float64],
}


@pytest.mark.parametrize("dtypes", COUNT_DTYPES)
def test_incrementing_counts_adds_one_to_each_in_its_own_dtype_and_bumps_its_version_once(dtypes):
    counts = [torch.tensor(41 + index, dtype=dtype) for index, dtype in enumerate(COUNT_DTYPES[dtypes])]
    versions = [count._version for count in counts]
    increment_counts_(counts)
    assert [count.dtype for count in counts] == COUNT_DTYPES[dtypes]
    assert [count.item() for count in counts] == [42 + index for index in range(len(counts))]
    # The engine's Python counts (see the module docstring) trust exactly one bump per increment.
    assert [count._version for count in counts] == [version + 1 for version in versions]


def test_the_cached_one_made_under_inference_mode_serves_a_later_step_with_autograd_on(monkeypatch):
    monkeypatch.setattr(scalars, "_OPERANDS", {})
    with torch.inference_mode():
        counts = [torch.tensor(1.0), torch.tensor(2.0)]
        increment_counts_(counts)
    assert not scalars._OPERANDS[(1.0, torch.float32)].is_inference()
    ours, theirs = _pair()
    with torch.enable_grad():
        _steps((ours, theirs), 0, 2)
    _assert_same(ours, theirs)
