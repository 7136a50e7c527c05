"""Adafactor against the implementations people use: torch.optim.Adafactor and transformers' Adafactor.

The float64 reference of the paper is in the contract table (cases_adafactor.py); here float32 runs on a
parameter set with matrices, vectors, a 3-D tensor and a scalar, driven by autograd.
"""

from __future__ import annotations

import pytest
import torch

import descentlab.optim as dl

SHAPES = [(6, 4), (4,), (2, 3, 5), (), (7, 1), (1, 9)]
STEPS = 100


def _params(dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=generator, dtype=dtype).requires_grad_() for shape in SHAPES]


def _loss(params, step):
    return sum(
        ((param**2) * (index + 1)).sum() + 0.1 * (1 + step % 3) * (param.abs() ** 3).sum()
        for index, param in enumerate(params)
    )


def _run(make_optimizer, steps=STEPS, dtype=torch.float32):
    params = _params(dtype)
    optimizer = make_optimizer(params)
    for step in range(steps):
        optimizer.zero_grad()
        _loss(params, step).backward()
        optimizer.step()
    return params, optimizer


def _max_relative_difference(ours, theirs):
    """The largest ``||a - b|| / ||b||`` over the tensors (elementwise ratios blow up near 0)."""
    return max(((a - b).norm() / b.norm()).item() for a, b in zip(ours, theirs) if b.norm() > 0)


def test_torch_form_is_bitwise_torchs_foreach_path_in_float32():
    hyper = {"lr": 0.02, "weight_decay": 0.1, "d": 1.5}
    ours, optimizer = _run(lambda params: dl.Adafactor(params, **hyper))
    theirs, reference = _run(lambda params: torch.optim.Adafactor(params, foreach=True, **hyper))
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    for a, b in zip(ours, theirs):  # torch's state keys and shapes: (..., n, 1) rows, (..., 1, m) columns
        ours_state, theirs_state = optimizer.state[a], reference.state[b]
        assert set(ours_state) == set(theirs_state)
        for key, value in theirs_state.items():
            assert torch.equal(ours_state[key], value), key
    assert optimizer.state[ours[2]]["row_var"].shape == (2, 3, 1)
    assert optimizer.state[ours[2]]["col_var"].shape == (2, 1, 5)
    assert set(optimizer.state[ours[3]]) == {"step", "variance"}  # a 0-d tensor is not factored


def test_torch_form_matches_torchs_default_loop_to_float_rounding():
    # torch's default for-loop applies the step as one fused multiply-add (add_ with alpha): one rounding
    # fewer than its foreach path and ours; measured 1.2e-7 (normwise relative) after 100 float32 steps.
    ours, _ = _run(lambda params: dl.Adafactor(params, lr=0.02))
    theirs, _ = _run(lambda params: torch.optim.Adafactor(params, lr=0.02))
    difference = _max_relative_difference(ours, theirs)
    assert 0 < difference < 1e-6, difference


transformers = pytest.importorskip("transformers")


def _hf(params, **hyper):
    # transformers' defaults: relative step, parameter scaling, eps (1e-30, 1e-3), d = 1, decay -0.8
    return transformers.optimization.Adafactor(params, lr=None, **hyper)


@pytest.mark.parametrize("beta1", [0.0, 0.9])
def test_paper_form_matches_transformers_adafactor_to_float_rounding(beta1):
    ours, _ = _run(lambda params: dl.Adafactor(params, variant="paper", beta1=beta1))
    theirs, _ = _run(lambda params: _hf(params, beta1=beta1 or None))
    difference = _max_relative_difference(ours, theirs)
    # float32 rounding of the same math over 100 steps: measured 8.4e-8 (beta1 = 0), 2.0e-7 (0.9)
    assert difference < 1e-6, difference


def test_torch_and_paper_forms_depart_where_gradients_are_small_against_eps1():
    # A float32 vector with a constant gradient of 1e-8: the paper's U_t = g / sqrt(g^2 + 1e-30) = 1,
    # torch's U_t = g / max(|g|, eps1) with eps1 = 1.19e-7: 0.084, so its first step is 12x shorter.
    moves = {}
    for variant in ("torch", "paper"):
        param = torch.ones(4, requires_grad=True)
        optimizer = dl.Adafactor([param], variant=variant)
        param.grad = torch.full((4,), 1e-8)
        optimizer.step()
        moves[variant] = 1.0 - param[0].item()
    alpha = 1.0 * 1e-2  # max(eps2, RMS(1)) * min(lr, 1 / sqrt(1))
    assert moves["paper"] == pytest.approx(alpha, rel=1e-5)
    assert moves["torch"] == pytest.approx(alpha * 1e-8 / torch.finfo(torch.float32).eps, rel=1e-3)


def test_complex_parameters_are_refused_at_construction():
    with pytest.raises(ValueError, match="Adafactor does not support complex parameters"):
        dl.Adafactor([torch.zeros(3, dtype=torch.complex64, requires_grad=True)])


def test_momentum_needs_its_state_from_the_start():
    param = torch.ones(3, requires_grad=True)
    optimizer = dl.Adafactor([param])
    param.grad = torch.ones(3)
    optimizer.step()
    optimizer.param_groups[0]["beta1"] = 0.9  # a scheduler turning momentum on later
    with pytest.raises(RuntimeError, match="construct the optimizer with beta1 > 0"):
        optimizer.step()
