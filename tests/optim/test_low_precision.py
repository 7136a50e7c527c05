"""Numerics at the edges: float16/bfloat16 parameters, and state that must keep float64 through a reload."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from optim_descriptions import CASES

import descentlab.optim as dl
from descentlab.optim._rules import nonvanishing_eps
from descentlab.optim.registry import optimizer_classes, step_protocol

LOW_PRECISION = [torch.float16, torch.bfloat16]
# Adamax's "paper" variant has no eps: 0/0 = NaN for an all-zero-gradient coordinate is its documented
# formula, in every dtype.
WITHOUT_EPS = {"adamax-paper"}
# Prodigy's first steps are d0 * lr = 1e-6 long (the paper's d0): float16 and bfloat16 round them to
# nothing, so x never leaves x0 and d never grows (the authors' code too); a d0 they resolve moves it.
LOW_PRECISION_HYPER = {dl.Prodigy: {"d0": 1e-2}}


def _takes_eps(cls: type) -> bool:
    return "eps" in inspect.signature(cls.__init__).parameters


# Rows driven by backward() then step(); every closure-driven optimizer (SVRG, Newton, LineSearchGD) is
# checked by the first test to have no eps, or it would need its own protocol here.
DIVIDING_CASES = [
    case
    for case in CASES
    if case.id not in WITHOUT_EPS and step_protocol(case.cls) == "gradient" and _takes_eps(case.cls)
]


def test_every_optimizer_with_an_eps_is_checked_in_low_precision():
    checked = {case.cls for case in DIVIDING_CASES}
    with_eps = {cls for cls in optimizer_classes().values() if _takes_eps(cls)}
    assert with_eps, "the registry must have optimizers with an eps"
    assert with_eps <= checked, f"not checked: {sorted(cls.__name__ for cls in with_eps - checked)}"


@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
@pytest.mark.parametrize("case", DIVIDING_CASES, ids=lambda c: c.id)
def test_zero_gradient_coordinate_stays_finite_with_the_default_eps(case, dtype):
    # Coordinate 1 never gets a gradient, so every accumulator of it stays 0 and only eps keeps the
    # update 0 / eps = 0. float16's smallest positive value is 6e-8: the default eps 1e-8 rounds to 0 there.
    # No weight decay either (it would give the coordinate a gradient); lr >= 0.01 so that bfloat16's
    # coarse grid (8 bits) registers the steps of the other coordinates.
    hyper = {key: value for key, value in case.hyper.items() if key not in ("eps", "weight_decay")}
    hyper["lr"] = max(hyper["lr"], 0.01)
    hyper.update(LOW_PRECISION_HYPER.get(case.cls, {}))
    if "weight_decay" in inspect.signature(case.cls.__init__).parameters:
        hyper["weight_decay"] = 0.0  # AdamW's default is 0.01
    start = torch.tensor([1.0, 0.5, -2.0, 0.25], dtype=dtype)
    param = start.clone().requires_grad_()
    optimizer = case.cls([param], **hyper)
    curvature = torch.tensor([1.0, 0.0, 0.5, 2.0], dtype=dtype)
    # 12 steps: RAdam's adaptive step (rho_t > 5) starts at step 6 with the default beta2.
    for _ in range(12):
        param.grad = curvature * (param.detach() - 0.1)
        optimizer.step()
    assert torch.isfinite(param).all(), f"{case.id} in {dtype}: {param.tolist()}"
    assert param[1].item() == 0.5, "a coordinate without gradient must not move"
    assert not torch.equal(param.detach(), start), "the run must move the other coordinates"


def test_float16_adam_with_a_small_gradient_takes_finite_steps():
    # (1 - beta2) g^2 = 1e-9 underflows float16 while m = (1 - beta1) g = 1e-4 does not: with an eps that
    # rounds to 0 the step is m / 0 = -inf (torch.optim's result); with eps = 6.1e-5 it is bounded.
    param = torch.ones(2, dtype=torch.float16, requires_grad=True)
    optimizer = dl.Adam([param], lr=1e-3)
    for _ in range(3):
        param.grad = torch.tensor([1e-3, 0.3], dtype=torch.float16)
        optimizer.step()
    assert torch.isfinite(param).all()
    assert 0.9 < param[0].item() < 1.0  # descends, by less than 0.1 (about 16 lr per step)


@pytest.mark.parametrize(
    ("dtype", "eps", "expected"),
    [
        (torch.float64, 1e-8, 1e-8),
        (torch.float32, 1e-8, 1e-8),
        (torch.float32, 1e-30, 1e-30),
        (torch.bfloat16, 1e-8, 1e-8),
        (torch.float16, 1e-3, 1e-3),
        (torch.float16, 1e-8, 2.0**-14),  # float16's smallest normal number, 6.1e-5
        (torch.float16, 1e-4, 1e-4),
        (torch.float32, 1e-40, 2.0**-126),
    ],
)
def test_eps_is_kept_unless_below_the_smallest_normal_number_of_the_dtype(dtype, eps, expected):
    values = [torch.zeros(3, dtype=dtype)]
    assert nonvanishing_eps(eps, values) == expected


TORCH_TWINS = [
    (dl.Adam, torch.optim.Adam, 0.01),
    (dl.AdamW, torch.optim.AdamW, 0.01),
    (dl.NAdam, torch.optim.NAdam, 0.01),
    (dl.RAdam, torch.optim.RAdam, 0.01),
    (dl.Adamax, torch.optim.Adamax, 0.01),
    (dl.RMSprop, torch.optim.RMSprop, 0.01),
    (dl.Adagrad, torch.optim.Adagrad, 0.1),
    (dl.Adadelta, torch.optim.Adadelta, 0.5),
]


def _final_params(cls, start, **hyper):
    param = start.clone().requires_grad_()
    # foreach=True on both sides: in low precision torch's own single-tensor and foreach kernels differ.
    optimizer = cls([param], **hyper, foreach=True)
    for _ in range(10):
        param.grad = param.detach() * torch.linspace(0, 2, len(start), dtype=start.dtype)
        optimizer.step()
    return param.detach()


def _start(dtype):
    start = torch.randn(40, generator=torch.Generator().manual_seed(3)).to(dtype)
    start[::7] = 0  # coordinates without gradient
    return start


def _class_name(value):
    return getattr(value, "__qualname__", None)


@pytest.mark.parametrize(("ours", "theirs", "lr"), TORCH_TWINS, ids=_class_name)
def test_float32_with_the_default_eps_gives_torchs_bits(ours, theirs, lr):
    start = _start(torch.float32)
    assert torch.equal(_final_params(ours, start, lr=lr), _final_params(theirs, start, lr=lr))


@pytest.mark.parametrize(("ours", "theirs", "lr"), TORCH_TWINS[:2] + TORCH_TWINS[4:5], ids=_class_name)
def test_float16_with_an_eps_it_holds_gives_torchs_bits(ours, theirs, lr):
    # eps = 1e-3 is a normal float16 number, so it is used as given: torch.optim's result bit for bit.
    start = _start(torch.float16)
    expected = _final_params(theirs, start, lr=lr, eps=1e-3)
    assert torch.equal(_final_params(ours, start, lr=lr, eps=1e-3), expected)


# --- Newton needs float32 or float64 -------------------------------------------------------------------
@pytest.mark.parametrize("dtype", LOW_PRECISION, ids=str)
def test_newton_refuses_low_precision_parameters_at_construction(dtype):
    model = torch.nn.Linear(3, 1).to(dtype)
    with pytest.raises(ValueError, match=rf"float32 or float64.*{dtype}.*model\.double\(\)"):
        dl.Newton(model.parameters())


def test_newton_refuses_parameters_converted_to_float16_after_construction():
    model = torch.nn.Linear(3, 1)
    optimizer = dl.Newton(model.parameters(), mode="cg")
    model.half()
    inputs = torch.ones(4, 3, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"float32 or float64.*torch.float16"):
        optimizer.step(lambda: model(inputs).square().sum())


# --- float64 state survives state_dict -> load_state_dict ----------------------------------------------
def _run(params, optimizer, start, steps):
    for step in range(start, start + steps):
        optimizer.zero_grad()
        loss = sum(((p - 0.3) ** 2 * (i + 1)).sum() + 0.1 * (p**4).sum() for i, p in enumerate(params))
        (loss * (1 + 0.01 * step)).backward()
        optimizer.step()


SCALAR_STATE_CASES = [
    (dl.Nesterov, {"lr": 0.01, "momentum": 0.9}),
    (dl.SWATS, {"lr": 0.01}),
    (dl.SWATS, {"lr": 0.01, "variant": "per-tensor"}),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize(("cls", "hyper"), SCALAR_STATE_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_scalar_state_keeps_its_dtype_through_load_state_dict(cls, hyper, dtype):
    generator = torch.Generator().manual_seed(1)
    initial = [torch.randn(shape, generator=generator).to(dtype) for shape in [(3, 2), (4,)]]
    uninterrupted = [p.clone().requires_grad_() for p in initial]
    resumed = [p.clone().requires_grad_() for p in initial]
    reference = cls(uninterrupted, **hyper)
    _run(uninterrupted, reference, 0, 30)
    # A deep copy, as after torch.save/torch.load: an in-process state_dict shares its tensors.
    saved = copy.deepcopy(reference.state_dict())
    with torch.no_grad():
        for target, source in zip(resumed, uninterrupted):
            target.copy_(source)
    restored = cls(resumed, **hyper)
    restored.load_state_dict(saved)
    for param, twin in zip(uninterrupted, resumed):
        for key, value in reference.state[param].items():
            loaded = restored.state[twin][key]
            assert (loaded.dtype, loaded.device) == (value.dtype, value.device), key
            assert torch.equal(loaded, value), key
    _run(uninterrupted, reference, 30, 30)
    _run(resumed, restored, 30, 30)
    for a, b in zip(uninterrupted, resumed):
        assert torch.equal(a, b)
