"""Prodigy's state layouts (optim/prodigy.py): a checkpoint in either loads into either optimizer.

Under FSDP2 ``p0`` and ``s`` keep the parameter's shape (a DTensor cannot be flattened); for a plain
parameter they are the authors' flat entries. The oracle is the uninterrupted run of the same optimizer.
"""

from __future__ import annotations

import copy

import pytest
import torch

import descentlab.optim as dl


def _grad(param: torch.Tensor, step: int) -> torch.Tensor:
    return torch.cos(torch.arange(param.numel(), dtype=param.dtype) * (step + 1)).reshape(param.shape)


def _run(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], steps: range) -> None:
    for step in steps:
        for param in params:
            param.grad = _grad(param, step)
        optimizer.step()


def _params() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(4)
    return [
        torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_()
        for shape in ((6, 5), (7,))
    ]


def test_a_state_with_param_shaped_p0_and_s_loads_into_a_plain_prodigy_and_continues_as_uninterrupted():
    params, resumed = _params(), _params()
    uninterrupted = dl.Prodigy(params, d0=1e-2)
    _run(uninterrupted, params, range(3))
    saved = copy.deepcopy(uninterrupted.state_dict())  # its per-parameter dicts are the optimizer's own
    # What a checkpoint taken under FSDP2 holds, gathered whole: p0 and s in each parameter's shape.
    for index, param in enumerate(params):
        for key in ("p0", "s"):
            saved["state"][index][key] = saved["state"][index][key].reshape(param.shape).clone()
    with torch.no_grad():
        for mine, theirs in zip(resumed, params):
            mine.copy_(theirs)
    optimizer = dl.Prodigy(resumed, d0=1e-2)
    optimizer.load_state_dict(saved)
    for param in resumed:
        assert optimizer.state[param]["p0"].shape == (param.numel(),)
    _run(uninterrupted, params, range(3, 6))
    _run(optimizer, resumed, range(3, 6))
    for mine, theirs in zip(resumed, params):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    assert optimizer.param_groups[0]["d"] == uninterrupted.param_groups[0]["d"]


def test_a_checkpoint_whose_state_and_slice_p_disagree_is_refused_with_what_is_wrong():
    params = _params()
    sliced = dl.Prodigy(params, slice_p=2)
    _run(sliced, params, range(1))
    saved = copy.deepcopy(sliced.state_dict())
    saved["param_groups"][0]["slice_p"] = 1  # p0 and s hold every second entry, the group says every one
    optimizer = dl.Prodigy(_params())
    with pytest.raises(
        ValueError, match=r"state 'p0' .* has shape \(15,\), where slice_p=1 keeps 30 entries"
    ):
        optimizer.load_state_dict(saved)
