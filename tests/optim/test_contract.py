"""Contract tests for every optimizer, driven by the table in optim_descriptions.py.

A check that does not apply to a row is skipped with the reason the row declares in ``not_applicable``
(and test_not_applicable_declarations_hold verifies each such claim).
"""

from __future__ import annotations

import copy
import functools
import inspect
import pickle

import numpy as np
import pytest
import torch
from optim_descriptions import CASES, NOT_APPLICABLE_CHECKS
from optim_harness import (
    PROBLEMS,
    drive,
    make_tensors,
    mean_over_batches,
    mixed_loss,
    mixed_params,
    param_groups,
    protocol_step,
    run_optimizer,
    run_reference,
)

import descentlab.optim as dl

REFERENCE_CASES = [case for case in CASES if case.reference is not None]
TORCH_CASES = [case for case in CASES if case.torch_cls is not None]
# Group keys that are implementation switches, not hyperparameters of the update rule.
FLAG_KEYS = {"params", "param_names", "maximize", "foreach", "capturable", "differentiable", "fused"}


def _require(case, check):
    if not case.applies(check):
        pytest.skip(f"{case.id}: {check} does not apply: {case.not_applicable[check]}")


def _groups(case, problem):
    """The problem's param groups, or one group where the row declares several not applicable."""
    if case.applies("param-groups"):
        return problem.group_indices()
    return [list(range(len(problem.initial)))]


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", REFERENCE_CASES, ids=lambda c: c.id)
def test_matches_float64_reference(case, problem):
    groups = _groups(case, problem)
    tensors = make_tensors(problem)
    overrides = [{}] + [case.second_group] * (len(groups) - 1)
    optimizer = case.cls(param_groups(problem, tensors, overrides, groups), **case.hyper)
    # The reference sees every hyperparameter from the case (row over documented defaults), none from
    # the library; each hyperparameter the groups hold must be among them.
    hypers = case.reference_hypers(len(groups))
    for group, hyper in zip(optimizer.param_groups, hypers):
        missing = set(group) - FLAG_KEYS - set(hyper)
        assert not missing, f"{case.id}: DEFAULTS lacks {sorted(missing)}"
    expected = run_reference(case.reference, case.reference_scope, problem, groups, hypers, case.steps)
    actual = run_optimizer(optimizer, tensors, problem, case.steps)
    for ours, reference in zip(actual, expected):
        assert np.all(np.isfinite(reference))
        np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)
    # The run must have moved the parameters, or the comparison proves nothing.
    assert any(not np.allclose(a, p) for a, p in zip(actual, problem.initial))


def _signature_defaults(cls):
    return {
        name: parameter.default
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_signature_and_defaults_match_torch(case):
    ours, theirs = _signature_defaults(case.cls), _signature_defaults(case.torch_cls)
    extra = set(ours) - set(theirs)
    assert extra <= {"variant", *case.extra_arguments}, f"unexpected extra arguments {extra}"
    for name, default in theirs.items():
        assert ours[name] == default, f"default of {name}: ours {ours[name]!r}, torch {default!r}"


def _torch_pair(case, make_params, **extra):
    ours_params, torch_params = make_params(), make_params()
    return (
        ours_params,
        torch_params,
        case.cls(ours_params, **case.hyper, **extra),
        case.torch_cls(torch_params, **{k: v for k, v in case.hyper.items() if k != "variant"}, **extra),
    )


def _mixed_params(case=None):
    return mixed_params(complex_param=case is None or case.applies("complex"))


def _torch_params(case):
    """The mixed parameters the row and its torch.optim class can both step."""
    return mixed_params(complex_param=case.applies("complex"), zero_size=case.applies("torch-zero-size"))


def _objective(case):
    return functools.partial(mixed_loss, none_grads=case.applies("none-grad"))


def _drive(params, optimizer, steps, start=0, scheduler=None, case=None):
    objective = mixed_loss if case is None else _objective(case)
    drive(optimizer, params, steps, start=start, scheduler=scheduler, objective=objective)


def _assert_same(ours_params, torch_params, ours_opt, torch_opt):
    for a, b in zip(ours_params, torch_params):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    ours_state, torch_state = ours_opt.state_dict()["state"], torch_opt.state_dict()["state"]
    assert ours_state.keys() == torch_state.keys()
    for index in torch_state:
        assert set(ours_state[index]) == set(torch_state[index]), f"state keys of param {index}"
        for key, value in torch_state[index].items():
            torch.testing.assert_close(ours_state[index][key], value, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_parity_with_torch(case, foreach, maximize):
    ours_params, torch_params, ours, theirs = _torch_pair(
        case, functools.partial(_torch_params, case), foreach=foreach, maximize=maximize
    )
    if maximize:  # keep the maximised objective bounded: maximise -loss
        for params in (ours_params, torch_params):
            with torch.no_grad():
                params[0].mul_(0.5)
    objective = (lambda params, step: -mixed_loss(params, step)) if maximize else mixed_loss
    for params, optimizer in ((ours_params, ours), (torch_params, theirs)):
        drive(optimizer, params, 20, objective=objective)
    _assert_same(ours_params, torch_params, ours, theirs)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_foreach_and_loop_are_identical(case):
    _require(case, "foreach")
    results = []
    for foreach in (True, False):
        params = _mixed_params(case)
        optimizer = case.cls(params, **case.hyper, foreach=foreach)
        _drive(params, optimizer, 15, case=case)
        results.append(params)
    assert any(not torch.equal(a, b) for a, b in zip(results[0], _mixed_params(case)))  # they moved
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_maximize_equals_minimizing_the_negated_loss(case):
    _require(case, "maximize")
    results = []
    for maximize, sign in ((False, 1.0), (True, -1.0)):
        params = _mixed_params(case)
        optimizer = case.cls(params, **case.hyper, maximize=maximize)
        objective = _objective(case)
        drive(optimizer, params, 15, objective=lambda p, step, s=sign, f=objective: s * f(p, step))
        results.append(params)
    assert any(not torch.equal(a, b) for a, b in zip(results[0], _mixed_params(case)))  # they moved
    for minimized, maximized in zip(*results):
        assert torch.equal(minimized, maximized)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_parameter_without_gradient_is_left_alone(case):
    _require(case, "none-grad")
    params = _mixed_params(case)
    optimizer = case.cls(params, **case.hyper)
    _drive(params, optimizer, 7, case=case)  # past RAdam's unrectified steps, which move nothing
    before = [p.detach().clone() for p in params]
    _drive(params, optimizer, 1, start=7, case=case)  # step 7: no gradient for NO_GRAD_INDEX
    assert torch.equal(params[2], before[2])
    assert not torch.equal(params[0], before[0])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_resuming_from_a_state_dict_continues_the_run_exactly(case):
    params = _mixed_params(case)
    optimizer = case.cls(params, **case.hyper)
    _drive(params, optimizer, 10, case=case)
    saved = copy.deepcopy(optimizer.state_dict())
    resumed_params = [p.detach().clone().requires_grad_() for p in params]
    _drive(params, optimizer, 10, start=10, case=case)
    # A fresh optimizer with other hyperparameters: everything must come from the state_dict.
    resumed = case.cls(resumed_params, **{**case.hyper, "lr": 0.5 * case.hyper.get("lr", 1.0)})
    resumed.load_state_dict(saved)
    _drive(resumed_params, resumed, 10, start=10, case=case)
    for a, b in zip(params, resumed_params):
        # Not bit for bit for NAdam alone: load_state_dict casts its float32 mu_product to the parameter
        # dtype (torch.optim.NAdam's too), so later products round differently (3e-12 relative here).
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert resumed.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]


@pytest.mark.parametrize("schedule", ["step", "onecycle"])
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_parity_under_torch_schedulers(case, schedule):
    ours_params, torch_params, ours, theirs = _torch_pair(case, functools.partial(_torch_params, case))
    for params, optimizer in ((ours_params, ours), (torch_params, theirs)):
        if schedule == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
        else:
            cycle_momentum = "momentum" in optimizer.defaults or "betas" in optimizer.defaults
            if "momentum" in optimizer.defaults and optimizer.defaults["momentum"] == 0:
                cycle_momentum = False
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=0.05, total_steps=25, cycle_momentum=cycle_momentum
            )
        _drive(params, optimizer, 24, scheduler=scheduler)
    _assert_same(ours_params, torch_params, ours, theirs)


@pytest.mark.parametrize("direction", ["torch-to-ours", "ours-to-torch"])
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_state_dict_round_trip_mid_run(case, direction):
    ours_params, torch_params, ours, theirs = _torch_pair(case, functools.partial(_torch_params, case))
    _drive(ours_params, ours, 10)
    _drive(torch_params, theirs, 10)
    source, target = (theirs, ours) if direction == "torch-to-ours" else (ours, theirs)
    # Swap the state: each run continues with the other implementation's saved state.
    saved_source, saved_target = copy.deepcopy(source.state_dict()), copy.deepcopy(target.state_dict())
    target.load_state_dict(saved_source)
    source.load_state_dict(saved_target)
    _drive(ours_params, ours, 10, start=10)
    _drive(torch_params, theirs, 10, start=10)
    _assert_same(ours_params, torch_params, ours, theirs)


def _lr(case):
    return {**case.defaults, **case.hyper}["lr"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_tensor_lr_and_step_returns_closure_loss(case):
    params = _mixed_params(case)
    hyper = {**case.hyper, "lr": torch.tensor(_lr(case), dtype=torch.float64)}
    optimizer = case.cls(params, **hyper)
    reference_params = _mixed_params(case)
    reference = case.cls(reference_params, **case.hyper)
    objective = _objective(case)
    loss = protocol_step(
        optimizer, lambda: objective(params, 0), lambda: mean_over_batches(objective, params), closure=True
    )
    assert torch.is_tensor(loss) and loss.item() == pytest.approx(objective(_mixed_params(case), 0).item())
    _drive(reference_params, reference, 1, case=case)
    for a, b in zip(params, reference_params):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def _params_of(optimizer):
    return [p for group in optimizer.param_groups for p in group["params"]]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_deepcopy_pickle_repr_and_param_groups(case):
    params = _mixed_params(case)
    optimizer = case.cls(params[:3], **case.hyper)
    _drive(params[:3], optimizer, 3, case=case)
    copies = [copy.deepcopy(optimizer), pickle.loads(pickle.dumps(optimizer))]
    _drive(params[:3], optimizer, 2, start=3, case=case)
    for other in copies:  # a copy continues exactly as the original
        _drive(_params_of(other), other, 2, start=3, case=case)
        assert other.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]
        for a, b in zip(_params_of(other), params[:3]):
            assert torch.equal(a, b)
    assert type(optimizer).__name__ in repr(optimizer)
    if case.applies("param-groups"):
        optimizer.add_param_group({"params": params[3:], "lr": _lr(case) / 2})
        kept = copy.deepcopy(optimizer.state_dict()["state"])
        _drive(params, optimizer, 1, start=5, case=case)
        assert len(optimizer.param_groups) == 2
        assert set(kept) <= set(optimizer.state_dict()["state"])
    for param in _params_of(optimizer):
        param.grad = torch.ones_like(param)
    optimizer.zero_grad(set_to_none=False)
    assert not any(p.grad.any() for p in _params_of(optimizer))
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_named_parameters_and_step_hooks(case):
    model = torch.nn.Linear(3, 2).double()
    optimizer = case.cls(model.named_parameters(), **case.hyper)
    calls = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    optimizer.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    inputs = torch.ones(4, 3, dtype=torch.float64)
    protocol_step(optimizer, lambda: (model(inputs) ** 2).sum(), lambda: (model(inputs) ** 2).sum())
    assert calls == ["pre", "post"]
    assert optimizer.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]


@pytest.mark.parametrize("case", [case for case in CASES if case.bad], ids=lambda c: c.id)
def test_bad_hyperparameters_raise_clear_errors(case):
    for kwargs, expected in case.bad:
        hyper = {**case.hyper, **kwargs}
        with pytest.raises(ValueError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            case.cls([torch.zeros(2, requires_grad=True)], **hyper)


def _sparse_run(cls, hyper, steps=3):
    """Parameters of an ``nn.Embedding(sparse=True)`` after ``steps`` steps, or the error raised."""
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(10, 3, sparse=True).double()
    optimizer = cls(embedding.parameters(), **hyper)
    try:
        for step in range(steps):
            optimizer.zero_grad()
            embedding(torch.tensor([1, 2, step % 10, 2])).pow(2).sum().backward()
            optimizer.step()
    except RuntimeError as error:
        return error
    return embedding.weight.detach()


def _supports_sparse(case):
    return case.cls in (dl.SGD, dl.Adagrad) and case.hyper.get("variant", "torch") == "torch"


@pytest.mark.parametrize("case", [case for case in TORCH_CASES if _supports_sparse(case)], ids=lambda c: c.id)
def test_sparse_gradients_match_torch_where_torch_supports_them(case):
    torch_hyper = {key: value for key, value in case.hyper.items() if key != "variant"}
    ours, theirs = _sparse_run(case.cls, case.hyper), _sparse_run(case.torch_cls, torch_hyper)
    if isinstance(theirs, RuntimeError):  # e.g. Adagrad's weight_decay: torch refuses it, so must we
        assert isinstance(ours, RuntimeError)
    else:
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("case", [case for case in CASES if not _supports_sparse(case)], ids=lambda c: c.id)
def test_sparse_gradients_get_a_clear_error_elsewhere(case):
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    optimizer = case.cls(embedding.parameters(), **case.hyper)
    indices = torch.tensor([1, 2])
    with pytest.raises(RuntimeError, match="sparse"):
        protocol_step(optimizer, lambda: embedding(indices).sum(), lambda: embedding(indices).sum())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cache_blocked_update_equals_whole_tensor_update(case):
    _require(case, "cache-blocking")
    results = []
    for block_numel in (0, 5):
        params = _mixed_params(case)
        optimizer = case.cls(params, **case.hyper)
        optimizer.block_numel = block_numel  # 5 elements: tensors are cut and small ones gathered
        _drive(params, optimizer, 12, case=case)
        results.append(params)
    for whole, blocked in zip(*results):
        assert torch.equal(whole, blocked)


def _raises_value_error(action) -> bool:
    try:
        action()
    except ValueError:
        return True
    return False


def _accepts(case, argument) -> bool:
    return argument in inspect.signature(case.cls.__init__).parameters


def _step_with(case, params, **extra):
    optimizer = case.cls(params, **case.hyper, **extra)
    _drive(params, optimizer, 4, case=case)


# What each not-applicable declaration claims, as a check that fails when the claim is false.
_CLAIMS = {
    "foreach": lambda case: (
        not _accepts(case, "foreach")
        or _raises_value_error(lambda: _step_with(case, _mixed_params(case), foreach=False))
    ),
    "maximize": lambda case: (
        not _accepts(case, "maximize")
        or _raises_value_error(lambda: _step_with(case, _mixed_params(case), maximize=True))
    ),
    "complex": lambda case: _raises_value_error(lambda: _step_with(case, mixed_params(complex_param=True))),
    "none-grad": lambda case: _raises_value_error(
        lambda: drive(case.cls(_mixed_params(case), **case.hyper), _mixed_params(case), 4)
    ),
    "param-groups": lambda case: (
        _raises_value_error(
            lambda: case.cls([{"params": _mixed_params(case)[:2]}, {"params": _mixed_params(case)[2:]}])
        )
        and _raises_value_error(
            lambda: case.cls(_mixed_params(case)[:2], **case.hyper).add_param_group(
                {"params": _mixed_params(case)[2:]}
            )
        )
    ),
    "cache-blocking": lambda case: (
        getattr(case.cls, "block_numel", 0) == 0 or not _elementwise_in_a_group(case)
    ),
    "torch-zero-size": lambda case: case.torch_cls is not None and _torch_refuses_zero_size(case),
}


def _elementwise_in_a_group(case) -> bool:
    """Whether the row's chain is elementwise in a group of its hyperparameters (a transform may declare
    it per group: SWATS is in its paper variant)."""
    if not hasattr(case.cls, "_elementwise_in"):
        return getattr(case.cls, "elementwise", False)
    optimizer = case.cls([torch.zeros(2, requires_grad=True)], **case.hyper)
    return optimizer._elementwise_in(optimizer.param_groups[0])


def _torch_refuses_zero_size(case) -> bool:
    params = [torch.zeros(0, requires_grad=True), torch.ones(2, requires_grad=True)]
    optimizer = case.torch_cls(params, **{k: v for k, v in case.hyper.items() if k != "variant"})
    for param in params:
        param.grad = torch.ones_like(param)
    try:
        optimizer.step()
    except Exception:  # any failure of torch's step is what the claim says
        return True
    return False


@pytest.mark.parametrize(
    ("case", "check"),
    [(case, check) for case in CASES for check in case.not_applicable],
    ids=lambda value: value.id if hasattr(value, "id") else value,
)
def test_not_applicable_declarations_hold(case, check):
    assert check in NOT_APPLICABLE_CHECKS, f"unknown check {check!r}; known: {sorted(NOT_APPLICABLE_CHECKS)}"
    assert case.not_applicable[check].strip(), "the row must say why"
    assert _CLAIMS[check](case), f"{case.id} declares {check} not applicable, but it applies"


@pytest.mark.parametrize("source_cls", [torch.optim.Adam, dl.Adam], ids=["torch-adam", "our-adam"])
def test_adam_state_dict_loaded_into_adamw_stays_decoupled(source_cls):
    source_params = _mixed_params()
    source = source_cls(source_params, lr=0.01, weight_decay=0.1)
    _drive(source_params, source, 2)
    saved = copy.deepcopy(source.state_dict())
    assert saved["param_groups"][0]["decoupled_weight_decay"] is False
    ours_params, torch_params = _mixed_params(), _mixed_params()
    ours, theirs = dl.AdamW(ours_params), torch.optim.AdamW(torch_params)
    for optimizer in (ours, theirs):
        optimizer.load_state_dict(copy.deepcopy(saved))  # torch shares the loaded step tensors
    assert ours.param_groups[0]["decoupled_weight_decay"] is True
    _drive(ours_params, ours, 3, start=2)
    _drive(torch_params, theirs, 3, start=2)
    _assert_same(ours_params, torch_params, ours, theirs)
