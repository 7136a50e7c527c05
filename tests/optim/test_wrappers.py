"""Lookahead, SAM and WeightAveraging beyond the contract table: joint-vector references, bitwise resume,
the evaluate-at-the-average block, torch.optim.swa_utils parity, and wrapping torch optimizers."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
from optim_harness import PROBLEMS, drive, make_tensors, mixed_loss, mixed_params, param_groups, run_optimizer

import descentlab.optim as dl
from reference.adam import adam_step
from reference.first_order import momentum_step
from reference.sgd import sgd_step
from reference.wrappers import averaged_run, sam_run

_ADAM = {
    "lr": 0.01,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "amsgrad": False,
    "decoupled_weight_decay": False,
    "variant": "torch",
}
_MOMENTUM = {"lr": 0.002, "momentum": 0.9, "weight_decay": 0.0}
_SGD = {
    "lr": 0.0005,
    "momentum": 0.5,
    "dampening": 0.0,
    "weight_decay": 0.0,
    "nesterov": False,
    "variant": "torch",
}
_SAM = {"sam_rho": 0.05, "sam_variant": "sam", "sam_eta": 0.01}

SAM_ROWS = {
    "sam-momentum": ("momentum", {**_MOMENTUM, **_SAM, "sam_rho": 0.1}, momentum_step, {"sam_rho": 0.02}),
    "asam-adam": ("adam", {**_ADAM, **_SAM, "sam_rho": 0.5, "sam_variant": "asam"}, adam_step, {"lr": 0.02}),
    "asam-eta0-sgd": ("sgd", {**_SGD, **_SAM, "sam_variant": "asam", "sam_eta": 0.0}, sgd_step, {}),
}


def _assert_matches(actual, expected):
    for ours, reference in zip(actual, expected):
        assert np.all(np.isfinite(reference))
        np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("row", sorted(SAM_ROWS))
def test_sam_matches_its_joint_float64_reference(row, problem, maximize):
    base, hyper, base_step, second = SAM_ROWS[row]
    groups = problem.group_indices()
    hypers = [hyper] + [{**hyper, **second}] * (len(groups) - 1)
    tensors = make_tensors(problem)
    overrides = [{}] + [second] * (len(groups) - 1)
    optimizer = dl.SAM(param_groups(problem, tensors, overrides), base=base, maximize=maximize, **hyper)
    steps = 120
    if maximize:  # maximise -f: the same iterates as minimising f, through the negated oracle
        negated = _negated(problem)
        actual = run_optimizer(optimizer, tensors, negated, steps)
    else:
        actual = run_optimizer(optimizer, tensors, problem, steps)
    expected = sam_run(problem.gradient, problem.initial, groups, hypers, base_step, steps)
    _assert_matches(actual, expected)
    assert any(not np.allclose(a, p) for a, p in zip(actual, problem.initial))


def _negated(problem):
    """The problem with value and gradient negated (maximising it is minimising the original)."""
    negated = copy.copy(problem)
    negated.value = lambda params: -problem.value(params)
    negated.gradient = lambda params: [-g for g in problem.gradient(params)]
    return negated


def test_sam_differs_from_its_base_and_evaluates_twice_per_step():
    params, plain = mixed_params(), mixed_params()
    calls = []
    sam = dl.SAM(params, base="sgd", lr=0.01, sam_rho=0.2)
    sgd = dl.SGD(plain, lr=0.01)
    for _ in range(5):
        sam.step(lambda: calls.append(1) or _backward(sam, params))
        _backward(sgd, plain)
        sgd.step()
    assert len(calls) == 10
    assert all(not torch.allclose(a, b) for a, b in zip(params, plain) if a.numel())
    with pytest.raises(RuntimeError, match="step\\(closure\\)"):
        sam.step()


def _backward(optimizer, params, step=0):
    optimizer.zero_grad()
    loss = mixed_loss(params, step)
    loss.backward()
    return loss


def test_lookahead_with_the_timm_form_is_its_base_for_the_first_two_cycles():
    wrapped, plain = mixed_params(), mixed_params()
    lookahead_opt = dl.Lookahead(wrapped, base="adam", lr=0.05, lookahead_k=4, lookahead_variant="timm")
    adam = dl.Adam(plain, lr=0.05)
    drive(lookahead_opt, wrapped, 7)
    drive(adam, plain, 7)
    assert all(torch.equal(a, b) for a, b in zip(wrapped, plain))
    drive(lookahead_opt, wrapped, 1, start=7)  # step 8 = 2k: the first synchronisation that moves
    drive(adam, plain, 1, start=7)
    assert not all(torch.equal(a, b) for a, b in zip(wrapped, plain) if a.numel())


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: dl.Lookahead(p, base="adam", lr=0.05, lookahead_k=3), id="lookahead-adam"),
        pytest.param(
            lambda p: dl.Lookahead(torch.optim.SGD(p, lr=0.02, momentum=0.9), lookahead_k=5),
            id="lookahead-torch",
        ),
        pytest.param(lambda p: dl.SAM(p, base="adam", lr=0.05, sam_variant="asam"), id="asam-adam"),
        pytest.param(
            lambda p: dl.WeightAveraging(p, base="momentum", lr=0.01, average="swa", average_every=2),
            id="swa",
        ),
        pytest.param(
            lambda p: dl.WeightAveraging(torch.optim.Adam(p, lr=0.05), ema_decay=0.9), id="ema-torch"
        ),
    ],
)
def test_resume_after_seven_steps_is_bitwise(make):
    params = mixed_params()
    optimizer = make(params)
    drive(optimizer, params, 7)
    saved = copy.deepcopy(optimizer.state_dict())
    resumed_params = [p.detach().clone().requires_grad_() for p in params]
    drive(optimizer, params, 11, start=7)
    resumed = make(resumed_params)
    resumed.load_state_dict(saved)
    drive(resumed, resumed_params, 11, start=7)
    assert all(torch.equal(a, b) for a, b in zip(params, resumed_params))
    at = getattr(optimizer, "at_iterate", None)
    if at is not None:
        with at(), resumed.at_iterate():
            assert all(torch.equal(a, b) for a, b in zip(params, resumed_params))


def test_a_base_checkpoint_loads_into_a_wrapper_whose_own_state_starts_fresh():
    params = mixed_params()
    adam = dl.Adam(params, lr=0.05)
    drive(adam, params, 3)
    wrapper = dl.Lookahead([p.detach().clone().requires_grad_() for p in params], base="adam", lr=0.01)
    wrapper.load_state_dict(adam.state_dict())
    assert wrapper.param_groups[0]["lr"] == 0.05 and wrapper.param_groups[0]["lookahead_k"] == 5
    assert not wrapper.state and wrapper.base.state


def test_lookahead_at_iterate_holds_the_slow_weights_and_restores_the_fast_ones():
    params = mixed_params()
    optimizer = dl.Lookahead(params, base="adam", lr=0.05, lookahead_k=4)
    start = [p.detach().clone() for p in params]
    drive(optimizer, params, 6)  # one synchronisation (step 4), two fast steps since
    fast = [p.detach().clone() for p in params]
    with optimizer.at_iterate():
        slow = [p.detach().clone() for p in params]
    assert all(torch.equal(a, b) for a, b in zip(params, fast))
    assert not any(torch.equal(a, b) for a, b in zip(slow, fast) if a.numel())
    assert not any(torch.equal(a, b) for a, b in zip(slow, start) if a.numel())


AVERAGE_ROWS = {
    "ema": {"average": "ema", "ema_decay": 0.95, "average_start": 0, "average_every": 1},
    "ema-late": {"average": "ema", "ema_decay": 0.8, "average_start": 30, "average_every": 4},
    "swa": {"average": "swa", "ema_decay": 0.999, "average_start": 0, "average_every": 1},
    "swa-late": {"average": "swa", "ema_decay": 0.999, "average_start": 25, "average_every": 7},
}


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("row", sorted(AVERAGE_ROWS))
def test_averages_match_their_float64_reference(row, problem):
    hyper = {**_ADAM, **AVERAGE_ROWS[row]}
    tensors = make_tensors(problem)
    optimizer = dl.WeightAveraging(tensors, base="adam", **hyper)
    steps = 130
    live = run_optimizer(optimizer, tensors, problem, steps)
    with optimizer.averaged():
        average = [t.detach().numpy().copy() for t in tensors]
    expected_live, expected_average = averaged_run(problem.gradient, problem.initial, hyper, adam_step, steps)
    _assert_matches(live, expected_live)
    _assert_matches(average, expected_average)
    assert all(np.array_equal(t.detach().numpy(), a) for t, a in zip(tensors, live))  # restored exactly
    assert any(not np.allclose(a, b) for a, b in zip(average, live))


@pytest.mark.parametrize("average", ["swa", "ema"])
def test_average_equals_torch_averaged_model_on_the_same_trajectory(average):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    inputs, targets = torch.randn(32, 4, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    start, every, decay = 5, 3, 0.9
    optimizer = dl.WeightAveraging(
        model.parameters(), base="sgd", lr=0.05, momentum=0.9, average=average, ema_decay=decay,
        average_start=start, average_every=every,
    )  # fmt: skip
    multi_avg_fn = torch.optim.swa_utils.get_ema_multi_avg_fn(decay) if average == "ema" else None
    averaged = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=multi_avg_fn)
    for step in range(1, 60):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(inputs), targets).backward()
        optimizer.step()
        if step >= start and (step - start) % every == 0:
            averaged.update_parameters(model)
    with optimizer.averaged():
        ours = [p.detach().clone() for p in model.parameters()]
    # The same lerps: EMA bit for bit; SWA within an ulp (torch forms 1 / (n + 1) from a tensor count).
    tolerance = {"rtol": 1e-14, "atol": 1e-16} if average == "swa" else {"rtol": 0.0, "atol": 0.0}
    for mine, theirs in zip(ours, averaged.module.parameters()):
        torch.testing.assert_close(mine, theirs.detach(), **tolerance)


def test_swalr_drives_the_wrapper_and_the_live_weights_survive_the_average_block():
    params = mixed_params()
    optimizer = dl.WeightAveraging(params, base="sgd", lr=0.1, average="swa", average_start=2)
    scheduler = torch.optim.swa_utils.SWALR(optimizer, swa_lr=0.01, anneal_epochs=3)
    drive(optimizer, params, 5, scheduler=scheduler)
    assert optimizer.base.param_groups[0]["lr"] == pytest.approx(0.01)
    live = [p.detach().clone() for p in params]
    with optimizer.averaged():
        assert not all(torch.equal(a, b) for a, b in zip(params, live) if a.numel())
    assert all(torch.equal(a, b) for a, b in zip(params, live))


@pytest.mark.parametrize("cls", [dl.Lookahead, dl.SAM, dl.WeightAveraging])
def test_wrapper_errors_are_clear(cls):
    param = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="pass its hyperparameters to it"):
        cls(torch.optim.SGD([param], lr=0.1), momentum=0.9)
    with pytest.raises(ValueError, match="steps from a gradient"):
        cls(torch.optim.LBFGS([param]))
    # a wrapper of the same kind would share its keys; SAM is refused earlier, as a closure optimizer
    nested = "steps from a gradient" if cls is dl.SAM else "already uses the group keys"
    with pytest.raises(ValueError, match=nested):
        cls(cls([param]))
    with pytest.raises(ValueError, match="bad hyperparameters for SGD"):
        cls([param], base="sgd", betas=(0.9, 0.99))


def test_wrappers_nest_and_keep_one_list_of_groups():
    param = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    inner = dl.Lookahead([param], base="adam", lr=0.1, lookahead_k=2)
    outer = dl.SAM(dl.WeightAveraging(inner, average="swa"), sam_rho=0.1)
    assert outer.param_groups is inner.param_groups is inner.base.param_groups
    closure = functools.partial(_quadratic_closure, outer, param)
    for _ in range(4):
        outer.step(closure)
    saved = copy.deepcopy(outer.state_dict())
    assert {"lookahead_state", "average_state", "sam_state"} <= set(saved)
    outer.add_param_group({"params": [torch.ones(2, requires_grad=True)], "lr": 0.01})
    assert outer.base.base.base.param_groups[1]["lookahead_k"] == 2


def _quadratic_closure(optimizer, param):
    optimizer.zero_grad()
    loss = ((param - torch.arange(3.0, dtype=torch.float64)) ** 2).sum()
    loss.backward()
    return loss


def test_hooks_on_the_wrapper_run_and_an_optimizer_with_a_base_name_is_refused():
    param = torch.zeros(2, requires_grad=True)
    optimizer = dl.Lookahead([param], base="adam", lr=0.1)
    calls = []
    optimizer.register_state_dict_post_hook(lambda opt, saved: {**saved, "extra": 1})
    optimizer.register_load_state_dict_post_hook(lambda opt: calls.append("loaded"))
    saved = optimizer.state_dict()
    assert saved["extra"] == 1
    optimizer.load_state_dict(saved)
    assert calls == ["loaded"]
    with pytest.raises(ValueError, match="pass one of them"):
        dl.SAM(torch.optim.SGD([param], lr=0.1), base="adam")


@pytest.mark.parametrize("cls", [dl.Lookahead, dl.WeightAveraging])
def test_a_torch_scheduler_on_the_wrapper_drives_the_base_as_on_torch_itself(cls):
    results = []
    for base in (dl.SGD, torch.optim.SGD):
        params = mixed_params()
        optimizer = cls(base(params, lr=0.05, momentum=0.9))
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=25)
        drive(optimizer, params, 24, scheduler=scheduler)
        assert optimizer.base.param_groups[0]["momentum"] != 0.9  # OneCycleLR cycles momentum too
        results.append(params)
    for ours, theirs in zip(*results):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_create_optimizer_builds_a_wrapper_with_no_decay_groups_for_its_base():
    from descentlab.training import create_optimizer

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    optimizer = create_optimizer("lookahead", model, lr=1e-3, weight_decay=0.05, base="adamw")
    assert type(optimizer.base) is dl.AdamW
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.05, 0.0]
