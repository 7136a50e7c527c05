"""SWATS's generated kernel (``compiled=True``), specialised on the phase read on the host, in float64.

The oracle is SWATS's eager step (itself checked against the float64 loop written from Keskar & Socher's
Algorithm 1 in test_contract.py and test_swats.py). The problem is a quadratic with a different curvature
per tensor, and ``eps`` (the paper's switch tolerance) is wide, so the switch comes at step 2 and both
phases run: parameters and every state entry of every parameter, the group's switch scalars in each
parameter's copy included, must agree within rounding.
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch

import descentlab.optim as dl
from descentlab.optim import _generated

needs_compiler = pytest.mark.skipif(shutil.which("g++") is None, reason="inductor's CPU backend needs g++")
slow = pytest.mark.skipif(
    os.environ.get("DESCENTLAB_SLOW_TESTS") != "1",
    reason="compiles with inductor (seconds to a minute each); set DESCENTLAB_SLOW_TESTS=1 to run",
)

STEPS = 6
# One bucket over MIN_NUMEL, called as one part (also in the per-tensor variant, which may be cut).
SHAPES = ((150, 130), (17000,), (60,))
OPTIONS = {"lr": 1e-2, "eps": 1e-3, "switch_rtol": 0.5}


# Four repeated layers between an embedding and a head, which parts of layers can cut.
LAYERED = ((300, 16), *[shape for _ in range(4) for shape in ((48, 48), (48,), (96, 48), (96,))], (16,))


def _train(
    compiled: bool, variant: str, after_first_step=None, shapes=SHAPES
) -> tuple[dl.SWATS, list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(4)
    params = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]
    params = [param.requires_grad_() for param in params]
    targets = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]
    optimizer = dl.SWATS([{"params": params, "compiled": compiled}], variant=variant, **OPTIONS)
    for step in range(STEPS):
        with torch.no_grad():
            for curvature, (param, target) in enumerate(zip(params, targets), start=1):
                param.grad = 2.0 * curvature * (param - target)
        optimizer.step()
        if step == 0 and after_first_step is not None:
            after_first_step(optimizer, params)
    return optimizer, params


def _assert_same(compiled, eager) -> None:
    (optimizer, params), (eager_optimizer, eager_params) = compiled, eager
    assert optimizer.switch_steps() == eager_optimizer.switch_steps()
    for param, eager_param in zip(params, eager_params, strict=True):
        torch.testing.assert_close(param, eager_param, rtol=1e-12, atol=1e-12)
        state, eager_state = optimizer.state[param], eager_optimizer.state[eager_param]
        assert state.keys() == eager_state.keys()
        for name in state:
            torch.testing.assert_close(state[name], eager_state[name], rtol=1e-12, atol=1e-15, msg=name)


@needs_compiler
def test_paper_variant_runs_one_kernel_per_phase_and_matches_the_eager_step():
    calls, entries = _generated.kernel_calls, _generated.compiled_entries
    loaded = _generated.loaded_entries
    compiled = _train(compiled=True, variant="paper")
    assert _generated.kernel_calls - calls == STEPS
    # One entry for the Adam phase, one for the SGD phase (compiled here or loaded from an earlier run).
    assert (_generated.compiled_entries - entries) + (_generated.loaded_entries - loaded) == 2
    (switch,) = compiled[0].switch_steps()
    assert switch is not None and switch < STEPS  # both phases ran
    # lambda_avg's copies: each parameter's is the group's (an inductor copy once advanced the later twice).
    averages = [compiled[0].state[param]["lambda_avg"] for param in compiled[1]]
    assert all(torch.equal(average, averages[0]) for average in averages)
    _assert_same(compiled, _train(compiled=False, variant="paper"))


def _switch_the_first_tensor(optimizer: dl.SWATS, params: list[torch.Tensor]) -> None:
    """Tensor 0 goes to SGD after step 1, the others stay in Adam: a part mid-switch."""
    state = optimizer.state[params[0]]
    for name, value in (("phase", 1.0), ("sgd_lr", 3e-3), ("switch_step", 1.0), ("switch_lr", 1e-2)):
        state[name].fill_(value)


@slow
@needs_compiler
def test_per_tensor_part_mid_switch_selects_by_phase_and_matches_the_eager_step():
    calls = _generated.kernel_calls
    compiled = _train(compiled=True, variant="per-tensor", after_first_step=_switch_the_first_tensor)
    assert _generated.kernel_calls - calls == STEPS
    (switches,) = compiled[0].switch_steps()
    assert switches[0] == 1 and any(step != 1 for step in switches.values())  # mixed phases at step 2
    _assert_same(
        compiled, _train(compiled=False, variant="per-tensor", after_first_step=_switch_the_first_tensor)
    )


@slow
@needs_compiler
def test_paper_variant_in_parts_adds_every_parts_dot_products_before_its_switch_test():
    calls = _generated.kernel_calls
    compiled = _train(compiled=True, variant="paper", shapes=LAYERED)
    parts = (_generated.kernel_calls - calls) / STEPS
    assert parts > 1 and parts == int(parts)  # one call per part at every step
    (switch,) = compiled[0].switch_steps()
    assert switch is not None and switch < STEPS
    _assert_same(compiled, _train(compiled=False, variant="paper", shapes=LAYERED))
