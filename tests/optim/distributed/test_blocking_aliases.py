"""Cache blocking updates the real tensors, never copies of them (single process, no torch.distributed).

A sharded DTensor's flat slice is an all-gathered copy; this tensor subclass reproduces that on one
process, so the engine's rule "block only plain contiguous tensors" is checked without FSDP.
"""

from __future__ import annotations

import pytest
import torch

import descentlab.optim as dl
from descentlab.optim import _bucket


class CopyingSlices(torch.Tensor):
    """A tensor whose ``[...]`` slices are copies, as slices of a sharded DTensor are."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        result = super().__torch_function__(func, types, args, kwargs or {})
        return result.clone() if func is torch.Tensor.__getitem__ else result


def _adam_steps(param: torch.Tensor, cls: type, block_numel: int | None = None) -> torch.Tensor:
    optimizer = cls([param], lr=0.1)
    if block_numel is not None:
        optimizer.block_numel = block_numel
    for step in range(3):
        param.grad = torch.linspace(-1.0, 1.0, param.numel()).reshape(param.shape) * (step + 1)
        optimizer.step()
    return param.detach().as_subclass(torch.Tensor)


def test_slices_that_are_copies_are_not_blocked():
    initial = torch.linspace(-2.0, 2.0, 3000).reshape(30, 100)
    expected = _adam_steps(initial.clone().requires_grad_(), torch.optim.Adam)
    param = initial.clone().as_subclass(CopyingSlices).requires_grad_()
    ours = _adam_steps(param, dl.Adam, block_numel=1000)
    assert not torch.equal(ours, initial)
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-7)


def test_blocked_non_contiguous_parameter_equals_torch():
    initial = torch.linspace(-2.0, 2.0, 3000).reshape(100, 30)
    expected = _adam_steps(initial.clone().t().requires_grad_(), torch.optim.Adam)
    ours = _adam_steps(initial.clone().t().requires_grad_(), dl.Adam, block_numel=1000)
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "tensor",
    [torch.zeros(4, 6).as_subclass(CopyingSlices), torch.zeros(4, 6).t()],
    ids=["subclass", "non-contiguous"],
)
def test_flat_alias_refuses_what_it_cannot_alias(tensor):
    with pytest.raises(RuntimeError):
        _bucket._flat_alias(tensor)


def test_flat_alias_is_a_view():
    tensor = torch.zeros(4, 6)
    _bucket._flat_alias(tensor)[5] = 1.0
    assert tensor[0, 5] == 1.0
