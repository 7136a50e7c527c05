import pytest
import torch
from torch import nn

from descentlab.training import (
    MaxNormConstraint,
    ProximalL1,
    attach_max_norm,
    l1_penalty,
    l2_penalty,
    sparsity,
)


def _big_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.ReLU(), nn.Linear(5, 3)
    )
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20.0)
    return model


def _row_norms(weight, axis):
    dims = [d for d in range(weight.ndim) if d != axis]
    return weight.detach().pow(2).sum(dim=dims).sqrt()


def test_max_norm_hook_bounds_every_neuron_after_each_step():
    model = _big_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    handle = attach_max_norm(optimizer, model, max_norm=2.0)
    x = torch.randn(8, 2, 6, 6)
    for _ in range(3):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
        for layer in (model[0], model[2], model[4]):
            norms = _row_norms(layer.weight, 0)
            assert norms.max() <= 2.0 + 1e-5
            assert norms.shape[0] == layer.weight.shape[0]
    handle.remove()
    optimizer.zero_grad()
    model(x).sum().backward()
    optimizer.step()
    assert _row_norms(model[2].weight, 0).max() > 2.0  # hook removed: the constraint is no longer applied


class HandWrittenSGD(torch.optim.Optimizer):
    """A minimal Optimizer subclass, as descentlab's own optimizers are, to check the post-step hook fires."""

    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])


def test_hooks_fire_on_optimizer_subclasses():
    model = _big_model()
    optimizer = HandWrittenSGD(model.parameters(), lr=0.5)
    attach_max_norm(optimizer, model, max_norm=0.5)
    ProximalL1(optimizer, strength=0.5).attach()
    model(torch.randn(4, 2, 6, 6)).pow(2).sum().backward()
    optimizer.step()
    assert _row_norms(model[2].weight, 0).max() <= 0.5 + 1e-5
    assert sparsity(model).zeros > 0


def test_max_norm_include_exclude_select_layers():
    model = _big_model()
    before = model[4].weight.detach().clone()
    MaxNormConstraint(model, 1.0, exclude=["4"]).apply()
    assert torch.equal(model[4].weight, before)
    assert _row_norms(model[2].weight, 0).max() <= 1.0 + 1e-5
    MaxNormConstraint(model, 1.0, include=["4"]).apply()
    assert _row_norms(model[4].weight, 0).max() <= 1.0 + 1e-5


def test_max_norm_scales_only_long_rows_by_hand():
    layer = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 4.0], [0.3, 0.4]]))
    MaxNormConstraint(layer, 1.0).apply()
    assert torch.allclose(layer.weight, torch.tensor([[0.6, 0.8], [0.3, 0.4]]), atol=1e-5)


def test_max_norm_conv_transpose_uses_output_channel_axis_and_rejects_bad_input():
    layer = nn.ConvTranspose2d(3, 5, 2)
    with torch.no_grad():
        layer.weight.mul_(100)
    MaxNormConstraint(layer, 1.0).apply()
    assert _row_norms(layer.weight, 1).max() <= 1.0 + 1e-5
    with pytest.raises(ValueError, match="max_norm must be"):
        MaxNormConstraint(layer, 0.0)
    with pytest.raises(ValueError, match="no layer to constrain"):
        MaxNormConstraint(nn.Sequential(nn.ReLU()), 1.0)


def test_penalties_match_closed_form():
    w = [torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])]
    assert l1_penalty(w, 0.5).item() == pytest.approx(0.5 * 6)
    assert l2_penalty(w, 0.5).item() == pytest.approx(0.25 * 14)
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    l2_penalty([p], 0.3).backward()
    assert torch.allclose(p.grad, 0.3 * p.detach())


def test_proximal_l1_produces_exact_zeros_and_reads_lr_each_step():
    torch.manual_seed(0)
    x = torch.randn(64, 20)
    true_w = torch.zeros(20)
    true_w[:3] = torch.tensor([2.0, -1.5, 1.0])
    y = x @ true_w + 0.01 * torch.randn(64)
    model = nn.Linear(20, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    ProximalL1(optimizer, strength=0.1).attach()
    plain = nn.Linear(20, 1, bias=False)
    plain.load_state_dict(model.state_dict())
    plain_optimizer = torch.optim.SGD(plain.parameters(), lr=0.05)
    for _ in range(300):
        for net, opt, penalty in ((model, optimizer, 0.0), (plain, plain_optimizer, 0.1)):
            opt.zero_grad()
            loss = (net(x).squeeze(1) - y).pow(2).mean() + (
                l1_penalty(net.parameters(), penalty) if penalty else 0
            )
            loss.backward()
            opt.step()
    w = model.weight.detach()[0]
    assert (w[3:] == 0).all()  # the irrelevant features are exactly zero
    assert (w[:3] != 0).all()
    assert sparsity(model).zeros == 17
    assert sparsity(plain).zeros == 0  # a subgradient penalty alone gives no exact zeros
    # The threshold is lr * strength with the *current* lr: a single step from a known point.
    layer = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.02, 0.04]]))
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    prox = ProximalL1(opt, strength=0.3)
    opt.param_groups[0]["lr"] = 0.1
    prox.apply()
    assert torch.allclose(layer.weight, torch.tensor([[0.47, 0.0, 0.01]]), atol=1e-7)


def test_sparsity_report_and_errors():
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, 0] = 1.0
        model.bias.fill_(1.0)
    report = sparsity(model)
    assert report.zeros == 7 and report.total == 10 and report.fraction == pytest.approx(0.7)
    assert report.per_parameter == {"weight": 7 / 8, "bias": 0.0}
    assert sparsity(model, weights_only=True).total == 8
    with pytest.raises(ValueError, match="strength must be"):
        l1_penalty(model.parameters(), -1.0)
    with pytest.raises(ValueError, match="not in the optimizer"):
        ProximalL1(torch.optim.SGD([model.weight], lr=0.1), 0.1, parameters=[model.bias])
