"""Contract tests for every optimizer, driven by the table in descriptions.py."""

from __future__ import annotations

import copy
import inspect
import pickle

import numpy as np
import pytest
import torch
from optim_descriptions import CASES
from optim_harness import PROBLEMS, make_tensors, param_groups, run_optimizer, run_reference

import descentlab.optim as dl

REFERENCE_CASES = [case for case in CASES if case.reference is not None]
TORCH_CASES = [case for case in CASES if case.torch_cls is not None]


def _group_hypers(case, problem):
    groups = problem.group_indices()
    return [{}] + [case.second_group] * (len(groups) - 1)


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize("case", REFERENCE_CASES, ids=lambda c: c.id)
def test_matches_float64_reference(case, problem):
    tensors = make_tensors(problem)
    optimizer = case.cls(param_groups(problem, tensors, _group_hypers(case, problem)), **case.hyper)
    # The reference sees every hyperparameter explicitly (defaults included) as the group holds them.
    hypers = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    expected = run_reference(case.reference, problem, hypers, case.steps)
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
    assert extra <= {"variant"}, f"unexpected extra arguments {extra}"
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


def _mixed_params():
    generator = torch.Generator().manual_seed(0)
    shapes = [(4, 3), (0,), (6,), (2, 2, 2)]
    params = [
        torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_() for shape in shapes
    ]
    params.append(torch.randn(5, generator=generator, dtype=torch.complex128).requires_grad_())
    return params


def _loss(params, step):
    total = 0
    for index, param in enumerate(params):
        if step % 4 == 3 and index == 2:
            continue  # this parameter gets no gradient on some steps
        total = total + ((param.abs() ** 2) * (index + 1)).sum() + 0.1 * (param.abs() ** 3).sum()
    return total


def _drive(params, optimizer, steps, start=0, scheduler=None):
    for step in range(start, start + steps):
        optimizer.zero_grad(set_to_none=True)
        _loss(params, step).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


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
        case, _mixed_params, foreach=foreach, maximize=maximize
    )
    if maximize:  # keep the maximised objective bounded: maximise -loss
        for params in (ours_params, torch_params):
            with torch.no_grad():
                params[0].mul_(0.5)
    for params, optimizer in ((ours_params, ours), (torch_params, theirs)):
        for step in range(20):
            optimizer.zero_grad()
            loss = _loss(params, step)
            (-loss if maximize else loss).backward()
            optimizer.step()
    _assert_same(ours_params, torch_params, ours, theirs)


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_foreach_and_loop_are_identical(case):
    results = []
    for foreach in (True, False):
        params = _mixed_params()
        optimizer = case.cls(params, **case.hyper, foreach=foreach)
        _drive(params, optimizer, 15)
        results.append(params)
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("schedule", ["step", "onecycle"])
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_parity_under_torch_schedulers(case, schedule):
    ours_params, torch_params, ours, theirs = _torch_pair(case, _mixed_params)
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
    ours_params, torch_params, ours, theirs = _torch_pair(case, _mixed_params)
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


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_tensor_lr_and_step_returns_closure_loss(case):
    params = _mixed_params()
    hyper = {**case.hyper, "lr": torch.tensor(case.hyper["lr"], dtype=torch.float64)}
    optimizer = case.cls(params, **hyper)
    reference_params = _mixed_params()
    reference = case.cls(reference_params, **case.hyper)

    def closure():
        optimizer.zero_grad()
        loss = _loss(params, 0)
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert torch.is_tensor(loss) and loss.item() == pytest.approx(_loss(_mixed_params(), 0).item())
    _drive(reference_params, reference, 1)
    for a, b in zip(params, reference_params):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_deepcopy_pickle_repr_and_param_groups(case):
    params = _mixed_params()
    optimizer = case.cls(params[:3], **case.hyper)
    _drive(params[:3], optimizer, 3)
    clone = copy.deepcopy(optimizer)
    restored = pickle.loads(pickle.dumps(optimizer))
    for other in (clone, restored):
        assert other.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]
    assert type(optimizer).__name__ in repr(optimizer)
    optimizer.add_param_group({"params": params[3:], "lr": case.hyper["lr"] / 2})
    kept = copy.deepcopy(optimizer.state_dict()["state"])
    _drive(params, optimizer, 1, start=3)
    assert len(optimizer.param_groups) == 2
    assert set(kept) <= set(optimizer.state_dict()["state"])
    optimizer.zero_grad(set_to_none=False)
    zeroed = [p.grad for p in params if p.grad is not None]
    assert len(zeroed) >= 4 and not any(grad.any() for grad in zeroed)
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_named_parameters_and_step_hooks(case):
    model = torch.nn.Linear(3, 2).double()
    optimizer = case.cls(model.named_parameters(), **case.hyper)
    calls = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    optimizer.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    model(torch.ones(4, 3, dtype=torch.float64)).sum().backward()
    optimizer.step()
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


def test_sparse_gradients_get_a_clear_error_elsewhere():
    for case in CASES:
        if _supports_sparse(case):
            continue
        error = _sparse_run(case.cls, case.hyper, steps=1)
        assert isinstance(error, RuntimeError) and "sparse" in str(error), case.id


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cache_blocked_update_equals_whole_tensor_update(case):
    results = []
    for block_numel in (0, 5):
        params = _mixed_params()
        optimizer = case.cls(params, **case.hyper)
        optimizer.block_numel = block_numel  # 5 elements: tensors are cut and small ones gathered
        _drive(params, optimizer, 12)
        results.append(params)
    for whole, blocked in zip(*results):
        assert torch.equal(whole, blocked)


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
