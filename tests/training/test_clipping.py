import math

import pytest
import torch

from descentlab.training import NonFiniteGradientError, clip_grad_norm, clip_grad_value


def _params_with_grads(grads):
    params = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros_like(g))
        p.grad = g.clone()
        params.append(p)
    return params


def test_clip_grad_norm_matches_hand_computation():
    grads = [torch.tensor([3.0, 0.0]), torch.tensor([[0.0, 4.0]])]  # global 2-norm 5
    params = _params_with_grads(grads)
    result = clip_grad_norm(params, max_norm=1.0)
    assert result.total_norm == pytest.approx(5.0)
    assert result.finite and not result.skip_step
    assert torch.allclose(params[0].grad, torch.tensor([0.6, 0.0]), atol=1e-6)
    assert torch.allclose(params[1].grad, torch.tensor([[0.0, 0.8]]), atol=1e-6)
    assert result.clipped_norm == pytest.approx(1.0, abs=1e-5)


def test_clip_grad_norm_leaves_small_gradients_and_supports_inf_norm():
    params = _params_with_grads([torch.tensor([0.3, -0.4])])
    clip_grad_norm(params, max_norm=1.0)
    assert torch.allclose(params[0].grad, torch.tensor([0.3, -0.4]))
    params = _params_with_grads([torch.tensor([2.0, -4.0])])
    result = clip_grad_norm(params, max_norm=1.0, norm_type=math.inf)
    assert result.total_norm == pytest.approx(4.0)
    assert torch.allclose(params[0].grad, torch.tensor([0.5, -1.0]), atol=1e-6)


def test_clip_grad_value_matches_clamp():
    params = _params_with_grads([torch.tensor([3.0, -0.2, -7.0])])
    result = clip_grad_value(params, 1.0)
    assert torch.equal(params[0].grad, torch.tensor([1.0, -0.2, -1.0]))
    assert result.total_norm == pytest.approx(math.sqrt(9 + 0.04 + 49), rel=1e-6)


def test_nonfinite_raise_names_the_parameter():
    good = torch.nn.Parameter(torch.zeros(2))
    good.grad = torch.ones(2)
    bad = torch.nn.Parameter(torch.zeros(2))
    bad.grad = torch.tensor([1.0, float("nan")])
    with pytest.raises(NonFiniteGradientError, match=r"decoder\.weight"):
        clip_grad_norm([("encoder.weight", good), ("decoder.weight", bad)], 1.0)
    with pytest.raises(NonFiniteGradientError, match="nonfinite='skip'"):
        clip_grad_value([good, bad], 1.0)


def test_nonfinite_skip_makes_optimizer_step_a_no_op():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    before = [p.detach().clone() for p in model.parameters()]
    exp_avg = optimizer.state[model.weight]["exp_avg"].clone()
    optimizer.zero_grad()
    model(torch.randn(4, 3)).sum().backward()
    model.weight.grad[0, 0] = float("inf")
    result = clip_grad_norm(model.named_parameters(), 1.0, nonfinite="skip")
    assert result.skip_step and not result.finite and result.total_norm == math.inf
    assert result.nonfinite_parameters == ("weight",)
    optimizer.step()  # called anyway: must change nothing
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
    assert torch.equal(optimizer.state[model.weight]["exp_avg"], exp_avg)
    assert int(optimizer.state[model.weight]["step"]) == 1


def test_nonfinite_zero_cleans_then_clips():
    params = _params_with_grads([torch.tensor([float("nan"), 3.0, float("-inf"), 4.0])])
    result = clip_grad_norm(params, max_norm=1.0, nonfinite="zero")
    assert math.isnan(result.total_norm) and not result.skip_step
    assert torch.allclose(params[0].grad, torch.tensor([0.0, 0.6, 0.0, 0.8]), atol=1e-6)
    params = _params_with_grads([torch.tensor([float("inf"), -3.0])])
    clip_grad_value(params, 1.0, nonfinite="zero")
    assert torch.equal(params[0].grad, torch.tensor([0.0, -1.0]))


def test_bad_arguments_raise_clear_errors():
    params = _params_with_grads([torch.ones(2)])
    with pytest.raises(ValueError, match="max_norm must be"):
        clip_grad_norm(params, -1.0)
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        clip_grad_norm(params, 1.0, nonfinite="ignore")
    with pytest.raises(ValueError, match="clip_value must be"):
        clip_grad_value(params, 0.0)
