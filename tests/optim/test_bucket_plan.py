"""The eager step's bucket plan (``descentlab.optim._bucket.BucketPlan``) against torch.optim.

From its second step a group's buckets are rebuilt from a plan instead of reading every parameter's
state again. Each test changes what the plan was built from, the way a user would between two steps,
does the same to torch.optim's optimizer, and compares the parameters: a stale plan would update with
the old state (or skip a new one) and move them by percents. It also checks that the plan was rebuilt,
and that it is reused while nothing changes. Tolerance as in test_step_counts.py.
"""

from __future__ import annotations

import copy
import gc
import weakref

import pytest
import torch
from optim_harness import seeded_tensors

import descentlab.optim as dl
from descentlab.optim import _engine

SHAPES = [(3, 2), (4,), (5,)]


@pytest.fixture(autouse=True)
def _plan_every_group(monkeypatch):
    # The engine plans only groups of _PLANNED_GROUP_SIZE parameters or more; these have three.
    monkeypatch.setattr(_engine, "_PLANNED_GROUP_SIZE", 1)


def _params() -> list[torch.Tensor]:
    return seeded_tensors(SHAPES, 0, requires_grad=True)


def _gradients(step: int) -> list[torch.Tensor]:
    return seeded_tensors(SHAPES, 100 + step)


def _adam_pair() -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    hyper = {"lr": 0.1, "betas": (0.5, 0.9)}
    return dl.Adam(_params(), **hyper), torch.optim.Adam(_params(), foreach=True, **hyper)


def _sgd_pair(momentum: float) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    hyper = {"lr": 0.1, "momentum": momentum}
    return dl.SGD(_params(), **hyper), torch.optim.SGD(_params(), foreach=True, **hyper)


def _steps(optimizers, first: int, count: int, skip: int | None = None) -> None:
    """Steps with the same gradients for both; parameter ``skip`` gets none."""
    for step in range(first, first + count):
        for optimizer in optimizers:
            for index, (param, grad) in enumerate(zip(optimizer.param_groups[0]["params"], _gradients(step))):
                param.grad = None if index == skip else grad.to(param.dtype)
            optimizer.step()


def _assert_same(ours: torch.optim.Optimizer, theirs: torch.optim.Optimizer) -> None:
    for mine, torchs in zip(ours.param_groups[0]["params"], theirs.param_groups[0]["params"]):
        torch.testing.assert_close(mine, torchs, rtol=1e-12, atol=0)


def _plan(optimizer: torch.optim.Optimizer):
    return optimizer._bucket_plans.get(id(optimizer.param_groups[0]))


def test_the_plan_is_reused_while_nothing_changes():
    ours, theirs = _adam_pair()
    _steps((ours, theirs), 0, 2)
    plan = _plan(ours)
    assert plan is not None
    _steps((ours, theirs), 2, 4)
    assert _plan(ours) is plan
    _assert_same(ours, theirs)


def _replace_exp_avg(optimizer):
    param = optimizer.param_groups[0]["params"][1]
    optimizer.state[param]["exp_avg"] = torch.full_like(param, 0.5)


def _clear_state(optimizer):
    optimizer.state.clear()


def _drop_one_state(optimizer):
    del optimizer.state[optimizer.param_groups[0]["params"][2]]


def _swap_a_parameter(optimizer):
    params = optimizer.param_groups[0]["params"]
    params[0] = params[0].detach().clone().mul_(2).requires_grad_()


ADAM_CHANGES = {
    "a state value replaced": _replace_exp_avg,
    "the state cleared": _clear_state,
    "one parameter's state deleted": _drop_one_state,
    "a parameter in the group replaced": _swap_a_parameter,
}


@pytest.mark.parametrize("change", ADAM_CHANGES)
def test_a_change_between_steps_rebuilds_the_plan(change):
    ours, theirs = _adam_pair()
    _steps((ours, theirs), 0, 3)
    plan = _plan(ours)
    for optimizer in (ours, theirs):
        ADAM_CHANGES[change](optimizer)
    _steps((ours, theirs), 3, 3)
    assert _plan(ours) is not plan
    _assert_same(ours, theirs)


def test_a_parameter_without_a_gradient_for_some_steps_is_skipped_then_updated_again():
    ours, theirs = _adam_pair()
    _steps((ours, theirs), 0, 2)
    _steps((ours, theirs), 2, 2, skip=1)
    _steps((ours, theirs), 4, 2)
    _assert_same(ours, theirs)
    for mine, torchs in zip(ours.param_groups[0]["params"], theirs.param_groups[0]["params"]):
        assert torch.equal(ours.state[mine]["step"], theirs.state[torchs]["step"])


def test_a_loaded_state_dict_is_used_at_the_next_step():
    ours, theirs = _adam_pair()
    _steps((ours, theirs), 0, 2)
    saved = [copy.deepcopy(optimizer.state_dict()) for optimizer in (ours, theirs)]
    _steps((ours, theirs), 2, 2)
    for optimizer, state in zip((ours, theirs), saved):
        optimizer.load_state_dict(state)
    _steps((ours, theirs), 4, 2)
    _assert_same(ours, theirs)


def test_a_momentum_buffer_created_on_first_use_and_momentum_switched_on_later():
    ours, theirs = _sgd_pair(momentum=0.9)
    _steps((ours, theirs), 0, 3)  # SGD's buffer is the first gradient: stored after the first step
    _assert_same(ours, theirs)
    ours, theirs = _sgd_pair(momentum=0.0)
    _steps((ours, theirs), 0, 2)
    for optimizer in (ours, theirs):
        optimizer.param_groups[0]["momentum"] = 0.9
    _steps((ours, theirs), 2, 3)
    _assert_same(ours, theirs)


def test_maximize_switched_on_mid_run_negates_the_reused_gradients():
    ours, theirs = _adam_pair()
    _steps((ours, theirs), 0, 2)
    for optimizer in (ours, theirs):
        optimizer.param_groups[0]["maximize"] = True
    _steps((ours, theirs), 2, 3)
    _assert_same(ours, theirs)


def test_a_parameter_converted_in_place_to_another_dtype_is_bucketed_anew():
    # model.float() after the optimizer was built rebinds each parameter's data, not the parameter; here
    # its state follows the same way, so only the dtype tells the plan.
    ours, theirs = _adam_pair()
    _steps((ours, theirs), 0, 2)
    for optimizer in (ours, theirs):
        param = optimizer.param_groups[0]["params"][0]
        param.data = param.data.float()
        for value in optimizer.state[param].values():
            if value.dim():
                value.data = value.data.float()
    _steps((ours, theirs), 2, 2)
    assert sorted(str(bucket[0][1]) for bucket in _plan(ours).buckets) == ["torch.float32", "torch.float64"]
    for mine, torchs in zip(ours.param_groups[0]["params"], theirs.param_groups[0]["params"]):
        assert mine.dtype == torchs.dtype
        torch.testing.assert_close(mine, torchs, rtol=1e-6 if mine.dtype == torch.float32 else 1e-12, atol=0)


def test_the_plan_does_not_keep_old_gradients_alive():
    ours = dl.Adam(_params(), lr=0.1)
    _steps((ours,), 0, 2)
    old = weakref.ref(ours.param_groups[0]["params"][0].grad)
    _steps((ours,), 2, 1)
    gc.collect()
    assert old() is None


def test_a_sparse_gradient_after_dense_steps_is_refused_as_before():
    param = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    ours = dl.Adam([param], lr=0.1)
    for _ in range(2):
        param.grad = torch.ones(4, dtype=torch.float64)
        ours.step()
    param.grad = torch.ones(4, dtype=torch.float64).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        ours.step()


def test_a_differentiable_step_is_never_planned():
    leaves = _params()
    params = [leaf.clone() for leaf in leaves]
    ours = dl.Adam(params, lr=0.1, differentiable=True)
    for step in range(2):
        for param, grad in zip(params, _gradients(step)):
            param.grad = grad
        ours.step()
    assert _plan(ours) is None


def test_a_group_smaller_than_the_threshold_is_never_planned(monkeypatch):
    monkeypatch.setattr(_engine, "_PLANNED_GROUP_SIZE", len(SHAPES) + 1)
    ours, theirs = _adam_pair()
    _steps((ours, theirs), 0, 3)
    assert _plan(ours) is None
    _assert_same(ours, theirs)
