import pytest
import torch
from torch import nn

from descentlab.training import (
    GradualUnfreezer,
    add_parameters_to_optimizer,
    decay_parameter_names,
    discriminative_param_groups,
    freeze,
    replace_output_layer,
    unfreeze,
    weight_decay_param_groups,
)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(4, 8)
        self.pos = nn.Parameter(torch.zeros(8))
        self.norm = nn.LayerNorm(8)
        self.body = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def no_weight_decay(self):
        return {"pos"}

    def forward(self, x):
        return self.head(self.body(self.norm(self.embed(x) + self.pos)))


def test_weight_decay_groups_exclude_bias_norm_and_listed():
    model = Net()
    groups = weight_decay_param_groups(model, 0.1, no_decay=["head.*"], lr=0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in groups[0]["params"])
    rest = sorted(names[id(p)] for p in groups[1]["params"])
    assert decayed == ["body.0.weight", "embed.weight"]
    assert rest == sorted(set(names.values()) - set(decayed))
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0 and groups[1]["lr"] == 0.01
    optimizer = torch.optim.AdamW(groups)
    assert len(optimizer.param_groups) == 2
    with pytest.raises(ValueError, match="weight_decay must be"):
        weight_decay_param_groups(model, -1)


def test_timm_one_dimensional_rule_and_no_weight_decay_hook():
    model = Net()
    model.no_weight_decay = lambda: set()
    assert "pos" in decay_parameter_names(model)
    assert "pos" not in decay_parameter_names(model, exclude_one_dimensional=True)
    everything = decay_parameter_names(model, exclude_bias=False, exclude_normalization=False)
    assert everything == {n for n, _ in model.named_parameters()}


def test_freeze_keeps_frozen_weights_fixed_and_optimizer_state():
    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x = torch.randn(16, 4)
    model(x).pow(2).mean().backward()
    optimizer.step()
    names = freeze(model, ["embed", "body.*"])
    assert "embed.weight" in names and "body.1.weight" in names and "head.weight" not in names
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    state_before = optimizer.state[model.embed.weight]["exp_avg"].clone()
    head_before = model.head.weight.detach().clone()
    for _ in range(3):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
    for n, p in model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), n
    assert torch.equal(optimizer.state[model.embed.weight]["exp_avg"], state_before)
    assert not torch.equal(model.head.weight, head_before)
    unfreeze(model, "body")
    assert model.body[0].weight.requires_grad and not model.embed.weight.requires_grad
    with pytest.raises(ValueError, match="matches no module"):
        freeze(model, "encoder")


def test_gradual_unfreezing_adds_groups_and_keeps_state():
    torch.manual_seed(0)
    model = Net()
    freeze(model, "*")
    unfreeze(model, "head")
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    unfreezer = GradualUnfreezer(model, optimizer, ["head", "body", "embed"], group_options={"lr": 0.001})
    x = torch.randn(16, 4)
    model(x).pow(2).mean().backward()
    optimizer.step()
    state = {k: v.clone() for k, v in optimizer.state[model.head.weight].items()}
    assert unfreezer.on_epoch_start(0) == 1 and len(optimizer.param_groups) == 1
    assert unfreezer.on_epoch_start(1) == 2 and len(optimizer.param_groups) == 2
    assert optimizer.param_groups[1]["lr"] == 0.001 and model.body[0].weight.requires_grad
    assert not model.embed.weight.requires_grad
    for key, value in state.items():
        assert torch.equal(optimizer.state[model.head.weight][key], value)
    optimizer.zero_grad()
    before = model.body[0].weight.detach().clone()
    model(x).pow(2).mean().backward()
    optimizer.step()
    assert not torch.equal(model.body[0].weight, before)
    assert int(optimizer.state[model.head.weight]["step"]) == 2
    assert unfreezer.on_epoch_start(5) == 3


def test_discriminative_lrs_and_output_replacement():
    model = Net()
    groups = discriminative_param_groups(model, ["embed", "body", "head"], lr=1.0, factor=2.0)
    assert [g["lr"] for g in groups] == [0.25, 0.5, 1.0, 1.0]  # last group: pos and norm, at lr
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    optimizer = torch.optim.SGD(groups, lr=1.0)
    new_head = replace_output_layer(model, "head", 5)
    assert model.head is new_head and model(torch.randn(2, 4)).shape == (2, 5)
    group = add_parameters_to_optimizer(optimizer, model.parameters(), lr=0.1)
    assert group["params"] == [new_head.weight, new_head.bias] and group["momentum"] == 0
    assert add_parameters_to_optimizer(optimizer, model.parameters()) is None
    with pytest.raises(TypeError, match=r"expects an nn\.Linear"):
        replace_output_layer(model, "norm", 2)
    with pytest.raises(ValueError, match="no submodule"):
        replace_output_layer(model, "classifier", 2)
