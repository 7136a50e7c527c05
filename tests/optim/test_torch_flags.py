"""torch.optim's implementation flags on our optimizers: ``fused``, ``differentiable``, ``capturable`` and
tensor hyperparameters. References are torch.optim itself and central finite differences in float64."""

from __future__ import annotations

import pytest
import torch

import descentlab.optim as dl

FUSED_CASES = [
    ("sgd", dl.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("sgd-plain", dl.SGD, torch.optim.SGD, {"lr": 0.1, "maximize": True}),
    ("adam", dl.Adam, torch.optim.Adam, {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    ("adamw", dl.AdamW, torch.optim.AdamW, {"lr": 0.05, "maximize": True}),
    ("adagrad", dl.Adagrad, torch.optim.Adagrad, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1}),
]


def _params(dtype, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3,), ()]
    return [torch.randn(shape, generator=generator).to(dtype).requires_grad_() for shape in shapes]


def _drive(optimizer, params, steps=5, seed=1):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for param in params:
            param.grad = torch.randn(param.shape, generator=generator).to(param.dtype)
        optimizer.step()


def _state_tensors(optimizer, params):
    return [value for param in params for value in optimizer.state[param].values()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize(("name", "ours", "theirs", "hyper"), FUSED_CASES, ids=[c[0] for c in FUSED_CASES])
def test_fused_runs_torchs_fused_kernel_exactly(name, ours, theirs, hyper, dtype):
    runs = []
    for cls in (ours, theirs):
        params = _params(dtype)
        optimizer = cls(params, fused=True, **hyper)
        _drive(optimizer, params)
        runs.append((params, _state_tensors(optimizer, params)))
    (our_params, our_state), (torch_params, torch_state) = runs
    torch.testing.assert_close(our_params, torch_params, rtol=0, atol=0)
    torch.testing.assert_close(our_state, torch_state, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("cls", "hyper"),
    [
        (dl.SGD, {"lr": 0.1, "momentum": 0.9, "variant": "ema"}),
        (dl.AdamW, {"lr": 0.05, "variant": "paper"}),
        (dl.Adagrad, {"lr": 0.1, "variant": "eps_inside"}),
    ],
    ids=["sgd-ema", "adamw-paper", "adagrad-eps-inside"],
)
def test_fused_for_a_variant_torch_lacks_runs_our_path(cls, hyper):
    runs = []
    for fused in (False, True):
        params = _params(torch.float64)
        optimizer = cls(params, fused=fused, **hyper)
        _drive(optimizer, params)
        runs.append(params)
        assert optimizer._step_supports_amp_scaling is False  # GradScaler unscales for our path
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


def test_only_torchs_fused_kernel_takes_the_gradient_scale():
    assert dl.Adam(_params(torch.float32), fused=True)._step_supports_amp_scaling is True
    assert dl.Adam(_params(torch.float32))._step_supports_amp_scaling is False


def test_fused_refuses_what_torch_refuses():
    params = _params(torch.float32)
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        dl.Adam(params, fused=True, foreach=True)
    with pytest.raises(RuntimeError, match="`fused` does not support `differentiable`"):
        dl.SGD(params, fused=True, differentiable=True)
    meta = torch.nn.Parameter(torch.empty(3, device="meta"))
    optimizer = dl.Adam([meta], fused=True)
    meta.grad = torch.empty(3, device="meta")
    with pytest.raises(RuntimeError, match="`fused=True` requires all the params to be floating point"):
        optimizer.step()


def test_tensor_hyperparameters_torch_refuses_with_foreach_match_float_ones():
    """torch refuses tensor lr/betas with foreach=True and mixed float/tensor betas; we accept them."""
    reference_params = _params(torch.float64)
    reference = torch.optim.Adam(reference_params, lr=0.01, betas=(0.8, 0.99), foreach=False)
    _drive(reference, reference_params)
    for hyper in (
        {"lr": torch.tensor(0.01), "foreach": True},
        {"betas": (torch.tensor(0.8), torch.tensor(0.99)), "foreach": True},
        {"betas": (0.8, torch.tensor(0.99))},
    ):
        params = _params(torch.float64)
        optimizer = dl.Adam(params, **{"lr": 0.01, "betas": (0.8, 0.99), **hyper})
        _drive(optimizer, params)
        torch.testing.assert_close(params, reference_params)


def test_capturable_is_accepted_and_runs_our_step_on_the_cpu():
    runs = []
    for capturable in (False, True):
        params = _params(torch.float64)
        optimizer = dl.Adam(params, lr=torch.tensor(0.01), capturable=capturable)
        _drive(optimizer, params)
        runs.append(params)
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


# --- differentiable=True: d(loss after k steps)/d(hyperparameter) against finite differences --------
TARGET = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
OFFSET = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))


def _tensor(value):
    return torch.tensor(value, dtype=torch.float64)


def _loss_after_steps(cls, make_hyper, value, steps=5, shape=(4,)):
    """Least squares after ``steps`` differentiable steps from a fixed start, as a function of ``value``.

    ``shape`` (4,) is a vector parameter; (2, 2) the same four weights as a matrix (Muon's orthogonalised
    step, Adafactor's factored moments).
    """
    start = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=torch.float64, requires_grad=True)
    weights = start.clone().reshape(shape)
    optimizer = cls([weights], differentiable=True, **make_hyper(value))
    for _ in range(steps):
        loss = (TARGET @ weights.reshape(-1) - OFFSET).pow(2).sum()
        (weights.grad,) = torch.autograd.grad(loss, weights, create_graph=True)
        optimizer.step()
    return (TARGET @ weights.reshape(-1) - OFFSET).pow(2).sum()


DIFFERENTIABLE_CASES = [
    ("adam-lr", dl.Adam, lambda x: {"lr": x, "weight_decay": 0.1}, 0.05),
    ("adam-amsgrad-lr", dl.Adam, lambda x: {"lr": x, "amsgrad": True}, 0.05),
    ("adam-beta1", dl.Adam, lambda x: {"lr": 0.05, "betas": (x, _tensor(0.99))}, 0.9),
    ("adam-beta2", dl.Adam, lambda x: {"lr": 0.05, "betas": (_tensor(0.9), x)}, 0.99),
    ("adamw-lr", dl.AdamW, lambda x: {"lr": x}, 0.05),
    ("sgd-momentum-lr", dl.SGD, lambda x: {"lr": x, "momentum": 0.9}, 0.01),
    (
        "sgd-nesterov-lr",
        dl.SGD,
        lambda x: {"lr": x, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
        0.01,
    ),
    ("rmsprop-lr", dl.RMSprop, lambda x: {"lr": x}, 0.01),
    ("rmsprop-centered-lr", dl.RMSprop, lambda x: {"lr": x, "momentum": 0.5, "centered": True}, 0.01),
    ("adagrad-lr", dl.Adagrad, lambda x: {"lr": x}, 0.05),
    ("adadelta-lr", dl.Adadelta, lambda x: {"lr": x}, 0.5),
    ("adamax-lr", dl.Adamax, lambda x: {"lr": x}, 0.05),
    ("nadam-lr", dl.NAdam, lambda x: {"lr": x}, 0.05),
    ("radam-lr", dl.RAdam, lambda x: {"lr": x}, 0.05),
    ("lamb-lr", dl.LAMB, lambda x: {"lr": x, "weight_decay": 0.1}, 0.05),
    ("lars-lr", dl.LARS, lambda x: {"lr": x, "weight_decay": 0.1, "trust_coefficient": 0.1}, 0.5),
    # issue 13's algorithms and wrappers ("-matrix": the parameter is a 2 x 2 matrix).
    ("adafactor-lr", dl.Adafactor, lambda x: {"lr": x, "weight_decay": 0.1}, 0.05),
    ("adafactor-matrix-lr", dl.Adafactor, lambda x: {"lr": x, "beta1": 0.9}, 0.05),
    ("adafactor-matrix-paper-lr", dl.Adafactor, lambda x: {"lr": x, "variant": "paper"}, 0.05),
    ("adafactor-matrix-beta1", dl.Adafactor, lambda x: {"lr": 0.05, "beta1": x}, 0.9),
    ("lamb-beta1", dl.LAMB, lambda x: {"lr": 0.05, "betas": (x, _tensor(0.999))}, 0.9),
    ("lamb-beta2", dl.LAMB, lambda x: {"lr": 0.05, "betas": (_tensor(0.9), x)}, 0.99),
    ("muon-adam-beta1", dl.Muon, lambda x: {"lr": 0.05, "adam_betas": (x, _tensor(0.95))}, 0.9),
    # nesterov=False: with the look-ahead this 2 x 2 problem is so curved that central differences only
    # settle below h = 1e-7 (the analytic gradient agrees with them there).
    ("muon-matrix-lr", dl.Muon, lambda x: {"lr": x, "ns_dtype": "param", "nesterov": False}, 0.05),
    ("muon-adamw-lr", dl.Muon, lambda x: {"lr": x}, 0.05),  # a vector takes the AdamW fallback
    ("lookahead-lr", dl.Lookahead, lambda x: {"base": "adam", "lr": x, "lookahead_k": 2}, 0.05),
    ("weight-averaging-lr", dl.WeightAveraging, lambda x: {"base": "adam", "lr": x, "ema_decay": 0.5}, 0.05),
]


@pytest.mark.parametrize(
    ("name", "cls", "make_hyper", "value"), DIFFERENTIABLE_CASES, ids=[c[0] for c in DIFFERENTIABLE_CASES]
)
def test_differentiable_step_gradient_matches_finite_differences(name, cls, make_hyper, value):
    shape = (2, 2) if "-matrix" in name else (4,)
    hyperparameter = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    loss = _loss_after_steps(cls, make_hyper, hyperparameter, shape=shape)
    (gradient,) = torch.autograd.grad(loss, hyperparameter)
    h = 1e-6
    above = _loss_after_steps(cls, make_hyper, _tensor(value + h), shape=shape).item()
    below = _loss_after_steps(cls, make_hyper, _tensor(value - h), shape=shape).item()
    central_difference = (above - below) / (2 * h)
    assert abs(central_difference) > 1e-3  # the loss depends on the hyperparameter: the test can fail
    assert gradient.item() == pytest.approx(central_difference, rel=1e-6)


@pytest.mark.parametrize(
    ("name", "cls", "make_hyper", "value"),
    DIFFERENTIABLE_CASES[:8:2],
    ids=[c[0] for c in DIFFERENTIABLE_CASES[:8:2]],
)
def test_differentiable_step_takes_the_same_steps(name, cls, make_hyper, value):
    plain_params, graph_params = _params(torch.float64), _params(torch.float64)
    hyper = make_hyper(_tensor(value))
    plain = cls(plain_params, **hyper)
    graph = cls([param.clone() for param in graph_params], differentiable=True, **hyper)
    _drive(plain, plain_params)
    _drive(graph, graph.param_groups[0]["params"])
    torch.testing.assert_close(graph.param_groups[0]["params"], plain_params, rtol=1e-14, atol=1e-15)


def _differentiable_lr():
    return torch.tensor(0.05, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("cls", [dl.ScheduleFreeSGD, dl.ScheduleFreeAdamW], ids=lambda c: c.__name__)
def test_schedule_free_refuses_a_graph_lr_whose_gradient_it_would_drop(cls):
    # lr reaches the step through the group's Python-number state: its gradient would silently be 0.
    with pytest.raises(ValueError, match=r"lr is a tensor that requires grad.*scheduled_lr"):
        _loss_after_steps(cls, lambda x: {"lr": x}, _differentiable_lr(), steps=1)


def test_schedule_free_differentiable_with_a_float_lr_still_steps():
    loss = _loss_after_steps(dl.ScheduleFreeSGD, lambda x: {"lr": x}, 0.05, steps=2)
    assert loss.requires_grad  # the graph reaches the start (z_1 = x_1 = y_1)


def test_prodigy_refuses_differentiable_naming_its_host_side_estimate():
    with pytest.raises(ValueError, match="distance estimate d is a number read on the host"):
        dl.Prodigy([torch.zeros(3, requires_grad=True).clone()], differentiable=True)


def test_sam_refuses_a_differentiable_base():
    with pytest.raises(ValueError, match=r"SAM cannot wrap a differentiable base.*outside autograd"):
        dl.SAM([torch.zeros(3, requires_grad=True).clone()], base="adam", differentiable=True)


def test_swats_refuses_a_graph_lr_its_host_side_switch_reads_as_a_float():
    with pytest.raises(ValueError, match=r"SWATS\(differentiable=True\).*host-side decision"):
        _loss_after_steps(dl.SWATS, lambda x: {"lr": x}, _differentiable_lr(), steps=1)
