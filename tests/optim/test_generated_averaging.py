"""WeightAveraging's average updated inside its base's generated kernel (``compiled=True``).

The oracle is the same wrapper over the eager base (its EMA and SWA are checked against
``torch.optim.swa_utils.AveragedModel`` in test_wrappers.py): in float64 the averages and parameters
must agree within rounding (1e-12). Plain SGD is the base of the CI tests: without the average it has no
kernel (one multi-tensor kernel already), so every kernel call counted here is one the average asked for.
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch

import descentlab.optim as dl
from descentlab.optim import _generated

needs_compiler = pytest.mark.skipif(shutil.which("g++") is None, reason="inductor's CPU backend needs g++")

STEPS = 6
# One bucket over MIN_NUMEL: two real tensors; a complex one joins it as a real view, which the kernel
# leaves to the wrapper; a parameter without a gradient is averaged by the wrapper too.
SHAPES = ((120, 100), (9000,))


def _params(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    params = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in SHAPES]
    params.append(torch.randn((3000,), generator=generator, dtype=torch.complex128))
    params.append(torch.randn((50,), generator=generator, dtype=torch.float64))  # never gets a gradient
    return [param.requires_grad_() for param in params]


def _train(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], steps: int = STEPS) -> None:
    for step in range(steps):
        for param in params[:-1]:
            angles = torch.arange(param.numel(), dtype=torch.float64) * (step + 1)
            param.grad = torch.sin(angles).reshape(param.shape).to(param.dtype)
        optimizer.step()


def _averages(optimizer: dl.WeightAveraging, params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [optimizer.state[param]["average"] for param in params]


def _pair(seed: int, **options):
    """The wrapper over a compiled base and over the eager one, on equal parameters."""
    ours, eager = _params(seed), _params(seed)
    return (
        (dl.WeightAveraging([{"params": ours, "compiled": True}], **options), ours),
        (dl.WeightAveraging([{"params": eager}], **options), eager),
    )


def _assert_same(ours, eager) -> None:
    (optimizer, params), (eager_optimizer, eager_params) = ours, eager
    for a, b in zip(
        [*params, *_averages(optimizer, params)], [*eager_params, *_averages(eager_optimizer, eager_params)]
    ):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-12, atol=1e-12)


@needs_compiler
@pytest.mark.parametrize("average", ["ema", "swa"])
def test_the_base_kernel_updates_the_averages_in_its_pass_and_matches_the_eager_wrapper(average):
    options = {"lr": 0.05, "average": average, "ema_decay": 0.7, "average_start": 1}
    ours, eager = _pair(seed=3, **options)
    calls, entries = _generated.kernel_calls, _generated.compiled_entries + _generated.loaded_entries
    _train(ours[0], ours[1])
    _train(eager[0], eager[1])
    # Step 1 starts the average (a copy, nothing to fuse); steps 2-6 average in the kernel, whose weight
    # is a tensor input: SWA's 1 / (n + 1) changes at every step without a recompile.
    assert _generated.kernel_calls - calls == STEPS - 1
    assert _generated.compiled_entries + _generated.loaded_entries - entries <= 1
    start = _params(seed=3)
    averages = _averages(*ours)
    assert all(not torch.equal(a, b) for a, b in zip(averages[:-1], start[:-1]))  # they moved
    torch.testing.assert_close(averages[-1], start[-1], rtol=0, atol=0)  # no gradient: the weights stood
    _assert_same(ours, eager)


@needs_compiler
def test_averages_of_several_weights_in_one_group_are_left_to_the_wrapper():
    # Every second step averages (the others run plain SGD eagerly). Parameters put into the group by
    # hand after two steps start their SWA then, so at steps 4 and 6 the group's averages have two
    # weights (1 / (n + 1) of different n): the kernel takes one weight, so the wrapper updates them all.
    options = {"lr": 0.05, "average": "swa", "average_every": 2}
    ours, eager = _pair(seed=5, **options)
    calls = _generated.kernel_calls
    _train(ours[0], ours[1], steps=2)
    _train(eager[0], eager[1], steps=2)
    assert _generated.kernel_calls - calls == 1  # step 2
    for optimizer, params in (ours, eager):
        added = [torch.ones_like(param).requires_grad_() for param in params[:2]]
        optimizer.param_groups[0]["params"].extend(added)
        params[3:3] = added  # the parameter without a gradient stays last
    calls = _generated.kernel_calls
    _train(ours[0], ours[1], steps=4)
    _train(eager[0], eager[1], steps=4)
    assert _generated.kernel_calls == calls
    assert [ours[0].state[param]["average_count"] for param in ours[1]] == [4, 4, 4, 3, 3, 4]
    _assert_same(ours, eager)


@needs_compiler
def test_a_base_run_eagerly_or_by_torch_leaves_every_average_to_the_wrapper():
    # block_numel = 0 turns the base's kernel off; a torch.optim base has none: the average is the
    # wrapper's own lerp, the same as over the eager base.
    calls = _generated.kernel_calls
    for base in (dl.SGD, torch.optim.SGD):
        ours, eager = _pair(seed=7, base=base, lr=0.05)
        if base is dl.SGD:
            ours[0].base.block_numel = 0
        _train(ours[0], ours[1])
        _train(eager[0], eager[1])
        _assert_same(ours, eager)
    assert _generated.kernel_calls == calls


@pytest.mark.skipif(
    os.environ.get("DESCENTLAB_SLOW_TESTS") != "1",
    reason="compiles Adam's kernel with the average (seconds); set DESCENTLAB_SLOW_TESTS=1 to run",
)
@needs_compiler
def test_a_base_with_state_averages_in_its_kernel_too():
    ours, eager = _pair(seed=9, base="adam", lr=0.01, weight_decay=0.1, average="swa", average_start=2)
    calls = _generated.kernel_calls
    _train(ours[0], ours[1])
    _train(eager[0], eager[1])
    assert _generated.kernel_calls - calls == STEPS  # Adam runs its kernel at every step
    _assert_same(ours, eager)
