"""Clipping at the edges: huge but finite gradients, p-norms against numpy float64, rejected arguments."""

import math

import numpy as np
import pytest
import torch

from descentlab.training import NonFiniteGradientError, clip_grad_norm, clip_grad_value


def _param(grad):
    p = torch.nn.Parameter(torch.zeros_like(grad))
    p.grad = grad.clone()
    return p


def _norm64(tensors, ord=2):
    flat = np.concatenate([t.detach().double().numpy().ravel() for t in tensors])
    return float(np.linalg.norm(flat, ord=ord))


HUGE = float(np.float32(1e20))  # the float32 value actually stored
HUGE_NORM = HUGE * math.sqrt(1000)  # 3.16e21: its square overflows float32


@pytest.mark.parametrize("policy", ["raise", "skip", "zero"])
def test_huge_finite_gradients_are_scaled_not_treated_as_nonfinite(policy):
    p = _param(torch.full((1000,), 1e20))
    result = clip_grad_norm([("w", p)], max_norm=1.0, nonfinite=policy)
    assert result.finite and not result.skip_step and result.nonfinite_parameters == ()
    assert result.total_norm == pytest.approx(HUGE_NORM, rel=1e-12)
    assert torch.isfinite(p.grad).all()
    assert _norm64([p.grad]) == pytest.approx(1.0, rel=1e-4)
    assert result.clipped_norm == pytest.approx(1.0, rel=1e-4)
    assert torch.allclose(p.grad, torch.full((1000,), 1 / math.sqrt(1000)), rtol=1e-5)


@pytest.mark.parametrize(("dtype", "value"), [(torch.float16, 60000.0), (torch.bfloat16, 1e30)])
def test_huge_half_precision_gradients_are_scaled(dtype, value):
    p = _param(torch.full((1000,), value, dtype=dtype))
    stored = float(p.grad[0])
    result = clip_grad_norm([p], max_norm=1.0)
    assert result.finite and result.total_norm == pytest.approx(stored * math.sqrt(1000), rel=1e-12)
    assert p.grad.dtype == dtype and torch.isfinite(p.grad).all()
    assert _norm64([p.grad]) == pytest.approx(1.0, rel=1e-2)  # 8-bit (bfloat16) mantissa


def test_tiny_max_norm_on_huge_gradients_does_not_flush_to_zero():
    # factor 1e-30 / 3.16e21 = 3e-52 is below float32's range although every product (3e-32) is not
    p = _param(torch.full((1000,), 1e20))
    clip_grad_norm([p], max_norm=1e-30)
    assert (p.grad > 0).all()
    assert _norm64([p.grad]) == pytest.approx(1e-30, rel=1e-4)


def test_real_nan_next_to_huge_gradients_is_named_and_handled_per_policy():
    def make():
        return [
            ("huge", _param(torch.full((1000,), 1e20))),
            ("broken", _param(torch.tensor([2.0, math.nan]))),
        ]

    with pytest.raises(NonFiniteGradientError, match=r"\['broken'\]"):
        clip_grad_norm(make(), 1.0, nonfinite="raise")

    named = make()
    result = clip_grad_norm(named, 1.0, nonfinite="skip")
    assert result.skip_step and not result.finite and result.nonfinite_parameters == ("broken",)
    assert all(p.grad is None for _, p in named)

    named = make()
    result = clip_grad_norm(named, 1.0, nonfinite="zero")
    assert not result.skip_step and not result.finite and result.nonfinite_parameters == ("broken",)
    assert math.isnan(result.total_norm)
    # only the NaN entry becomes 0; the rest is clipped together: global norm sqrt(1000 * HUGE^2 + 4)
    huge, broken = named[0][1].grad, named[1][1].grad
    coef = 1.0 / math.sqrt(1000 * HUGE**2 + 4.0)
    assert torch.allclose(huge, torch.full((1000,), HUGE * coef), rtol=1e-5)
    assert torch.allclose(broken, torch.tensor([2.0 * coef, 0.0]), rtol=1e-5, atol=0.0)
    assert _norm64([huge, broken]) == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("norm_type", [1.0, 3.0, math.inf])
def test_p_norms_match_numpy_float64(norm_type):
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(7, 3, generator=generator) * 10, torch.randn(5, generator=generator)]
    params = [_param(g) for g in grads]
    expected = _norm64(grads, ord=norm_type)
    result = clip_grad_norm(params, max_norm=0.5, norm_type=norm_type)
    assert result.total_norm == pytest.approx(expected, rel=1e-12)
    coef = 0.5 / (expected + 1e-6)
    for p, g in zip(params, grads):
        assert torch.allclose(p.grad, g * coef, rtol=1e-6)
    assert _norm64([p.grad for p in params], ord=norm_type) == pytest.approx(0.5, rel=1e-5)


def test_large_p_and_float64_gradients_do_not_overflow_the_norm():
    # |1e20|^20 = 1e400 and (1e200)^2 = 1e400 overflow float64; the norms themselves do not
    p = _param(torch.tensor([1e20, 1e20]))
    assert clip_grad_norm([p], 1.0, norm_type=20.0).total_norm == pytest.approx(
        HUGE * 2 ** (1 / 20), rel=1e-12
    )
    p = _param(torch.tensor([3e200, 4e200], dtype=torch.float64))
    result = clip_grad_norm([p], 1.0)
    assert result.total_norm == pytest.approx(5e200, rel=1e-12)
    assert torch.allclose(p.grad, torch.tensor([0.6, 0.8], dtype=torch.float64), rtol=1e-12)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_ordinary_gradients_match_torch_clip_grad_norm(norm_type):
    generator = torch.Generator().manual_seed(1)
    grads = [torch.randn(4, 4, generator=generator), torch.randn(3, generator=generator)]
    ours, theirs = [_param(g) for g in grads], [_param(g) for g in grads]
    result = clip_grad_norm(ours, 1.0, norm_type=norm_type)
    torch_norm = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type=norm_type)
    assert result.total_norm == pytest.approx(float(torch_norm), rel=1e-6)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-7)


def test_clip_grad_value_with_a_bound_beyond_float16_range():
    p = _param(torch.tensor([60000.0, -3.0], dtype=torch.float16))
    result = clip_grad_value([p], 1e5)
    assert torch.equal(p.grad, torch.tensor([60000.0, -3.0], dtype=torch.float16))
    assert result.finite and result.total_norm == pytest.approx(math.hypot(60000.0, 3.0), rel=1e-12)
    p = _param(torch.full((1000,), 1e20))
    result = clip_grad_value([p], 2.0)
    assert result.finite and result.total_norm == pytest.approx(HUGE_NORM, rel=1e-12)
    assert torch.equal(p.grad, torch.full((1000,), 2.0))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_norm": True}, TypeError, r"max_norm must be a finite real number > 0, got True of type bool"),
        ({"max_norm": "1.0"}, TypeError, r"max_norm must be .* got '1.0' of type str"),
        ({"max_norm": 0.0}, ValueError, r"max_norm must be a finite real number > 0, got 0.0"),
        ({"max_norm": math.nan}, ValueError, r"max_norm must be .* got nan"),
        ({"max_norm": math.inf}, ValueError, r"max_norm must be .* got inf"),
        ({"max_norm": 1.0, "norm_type": 0}, ValueError, r"norm_type must be a real number > 0 .* got 0"),
        ({"max_norm": 1.0, "norm_type": -2.0}, ValueError, r"norm_type must be .* got -2.0"),
        ({"max_norm": 1.0, "norm_type": -math.inf}, ValueError, r"norm_type must be .* got -inf"),
        ({"max_norm": 1.0, "norm_type": math.nan}, ValueError, r"norm_type must be .* got nan"),
        ({"max_norm": 1.0, "norm_type": True}, TypeError, r"norm_type must be .* got True of type bool"),
        ({"max_norm": 1.0, "norm_type": "fro"}, TypeError, r"norm_type must be .* got 'fro' of type str"),
    ],
)
def test_clip_grad_norm_rejects_meaningless_arguments(kwargs, error, message):
    p = _param(torch.ones(2))
    with pytest.raises(error, match=message):
        clip_grad_norm([p], **kwargs)
    assert torch.equal(p.grad, torch.ones(2))


@pytest.mark.parametrize(
    ("value", "error"), [(True, TypeError), ("1", TypeError), (-1.0, ValueError), (math.nan, ValueError)]
)
def test_clip_grad_value_rejects_meaningless_bounds(value, error):
    with pytest.raises(error, match=r"clip_value must be a finite real number > 0, got"):
        clip_grad_value([_param(torch.ones(2))], value)


def test_numpy_scalars_and_ints_are_accepted():
    p = _param(torch.tensor([3.0, 4.0]))
    result = clip_grad_norm([p], np.float32(1.0), norm_type=2)
    assert result.total_norm == pytest.approx(5.0)
    assert torch.allclose(p.grad, torch.tensor([0.6, 0.8]), rtol=1e-6)
