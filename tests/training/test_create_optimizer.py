"""create_optimizer: timm's no-decay rule, layer-wise lr decay honoured by our schedulers, name lookup."""

import math

import pytest
import torch
from torch import nn

import descentlab
from descentlab.optim import SGD, AdamW, RAdam
from descentlab.schedules import Cosine, ScheduledLR


class Net(nn.Module):
    """Every kind of parameter the rule must sort: weights, biases, norms, 1-D extras, listed names."""

    def __init__(self):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, 4))  # 2-D, excluded only by no_weight_decay()
        self.embed = nn.Embedding(5, 4)
        self.conv = nn.Conv1d(4, 4, 1)
        self.norm = nn.BatchNorm1d(4)
        self.gain = nn.Parameter(torch.ones(4))  # 1-D but neither bias nor norm: timm skips ndim <= 1
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)

    def no_weight_decay(self):
        return {"pos_embed"}


def names_in(optimizer, model, group_filter):
    ids = {id(p) for g in optimizer.param_groups if group_filter(g) for p in g["params"]}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def test_bias_and_norm_rule_decays_exactly_the_weights_timm_decays():
    model = Net()
    optimizer = descentlab.create_optimizer("adamw", model, lr=1e-3, weight_decay=0.05)
    assert names_in(optimizer, model, lambda g: g["weight_decay"] == 0.05) == {
        "embed.weight",
        "conv.weight",
        "head.weight",
    }
    # written out from timm's param_groups_weight_decay: ndim <= 1 or listed -> no decay; frozen left out
    assert names_in(optimizer, model, lambda g: g["weight_decay"] == 0.0) == {
        "pos_embed",
        "conv.bias",
        "norm.weight",
        "norm.bias",
        "gain",
        "head.bias",
    }


def test_glob_patterns_replace_the_rule():
    model = Net()
    optimizer = descentlab.create_optimizer(AdamW, model, lr=1e-3, weight_decay=0.1, no_decay=["head.*"])
    not_decayed = names_in(optimizer, model, lambda g: g["weight_decay"] == 0.0)
    assert not_decayed == {"head.weight", "head.bias", "pos_embed"}  # pos_embed: no_weight_decay()


def test_steps_equal_torch_adamw_on_hand_built_groups():
    torch.manual_seed(0)
    ours_model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    torch_model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    torch_model.load_state_dict(ours_model.state_dict())
    ours = descentlab.create_optimizer("AdamW", ours_model, lr=0.01, weight_decay=0.5)
    decayed = [torch_model[0].weight, torch_model[2].weight]
    rest = [torch_model[0].bias, torch_model[1].weight, torch_model[1].bias, torch_model[2].bias]
    reference = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": 0.5}, {"params": rest, "weight_decay": 0.0}], lr=0.01
    )
    x = torch.randn(8, 3)
    for model, optimizer in ((ours_model, ours), (torch_model, reference)):
        for _ in range(3):
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
    for a, b in zip(ours_model.parameters(), torch_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_layer_decay_scales_follow_beit_and_our_scheduler_applies_lr_scale():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3), nn.Linear(3, 1))
    optimizer = descentlab.create_optimizer("sgd", model, lr=0.1, weight_decay=0.01, layer_decay=0.5)
    scale_of = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            scale_of[id(p)] = group["lr_scale"]
            assert group["lr"] == pytest.approx(0.1 * group["lr_scale"])  # right with no scheduler
    assert [scale_of[id(layer.weight)] for layer in model] == [0.25, 0.5, 1.0]  # 0.5 ** (L - 1 - k)
    scheduler = ScheduledLR(optimizer, Cosine(4))
    for step in range(1, 5):
        scheduler.step()
        cosine = 0.5 * (1 + math.cos(math.pi * step / 4))
        for group in optimizer.param_groups:
            assert group["lr"] == pytest.approx(0.1 * cosine * group["lr_scale"], abs=1e-15)


def test_timm_style_groups_without_initial_lr_get_lr_scale_from_step_zero():
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    optimizer = SGD([{"params": [a], "lr_scale": 0.3}, {"params": [b]}], lr=0.2)
    scheduler = ScheduledLR(optimizer, Cosine(10))
    assert scheduler.get_last_lr() == pytest.approx([0.06, 0.2])


def test_explicit_layers_and_unnamed_parameters_go_to_the_head():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 1))
    optimizer = descentlab.create_optimizer(RAdam, model, lr=1.0, layer_decay=0.1, layers=["0", "1"])
    scales = {id(p): g["lr_scale"] for g in optimizer.param_groups for p in g["params"]}
    assert [scales[id(layer.weight)] for layer in model] == pytest.approx([0.1, 1.0, 1.0])


def test_names_resolve_case_insensitively_and_typos_list_close_matches():
    model = nn.Linear(2, 1)
    assert type(descentlab.create_optimizer("rAdAm", model)) is RAdam
    assert type(descentlab.create_optimizer(torch.optim.SGD, model, lr=0.1)) is torch.optim.SGD
    with pytest.raises(ValueError, match="Did you mean RAdam"):
        descentlab.create_optimizer("radamm", model)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: descentlab.create_optimizer("linesearchgd", m, weight_decay=0.1), "takes no weight_decay"),
        (lambda m: descentlab.create_optimizer("sgd", m.parameters(), layer_decay=0.5), "needs the model"),
        (lambda m: descentlab.create_optimizer("sgd", m, lr=0.1, layer_decay=1.5), r"in \(0, 1\]"),
        (
            lambda m: descentlab.create_optimizer("sgd", m, lr=0.1, weight_decay=0.1, no_decay="bias"),
            "no_decay",
        ),
        (lambda m: descentlab.create_optimizer(3, m), "optimizer name"),
    ],
)
def test_bad_arguments_name_the_value_and_the_fix(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(nn.Linear(2, 1))
