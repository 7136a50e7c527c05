import math

import pytest
import torch
from torch import nn

from descentlab.training import init_for_activation, init_scheme_for, init_weight_


@pytest.mark.parametrize(
    ("activation", "distribution", "mode", "expected_var"),
    [
        ("tanh", "normal", None, 1 / 1000),  # Glorot: 1 / fan_avg, fan_avg = (1200 + 800) / 2
        ("sigmoid", "uniform", None, 1 / 1000),
        ("relu", "normal", None, 2 / 1200),  # He: 2 / fan_in
        (nn.LeakyReLU(0.2), "uniform", None, 2 / (1.04 * 1200)),
        ("gelu", "normal", "fan_out", 2 / 800),
        ("selu", "normal", None, 1 / 1200),  # LeCun: 1 / fan_in
        ("elu", "uniform", "fan_avg", 2 / 1000),
    ],
)
def test_empirical_variance_of_large_layer_matches_formula(activation, distribution, mode, expected_var):
    layer = nn.Linear(1200, 800)
    generator = torch.Generator().manual_seed(0)
    init_for_activation(layer, activation, distribution, mode, generator=generator)
    w = layer.weight.detach().double()
    assert w.var().item() == pytest.approx(expected_var, rel=0.02)
    assert abs(w.mean().item()) < 0.01 * math.sqrt(expected_var)
    assert torch.equal(layer.bias, torch.zeros(800))
    if distribution == "uniform":
        assert w.abs().max().item() <= math.sqrt(3 * expected_var) + 1e-9


def test_conv_fans_and_whole_model():
    model = nn.Sequential(
        nn.Conv2d(16, 32, 5), nn.ReLU(), nn.Flatten(), nn.Linear(10, 10), nn.BatchNorm1d(10)
    )
    names = init_for_activation(model, nn.ReLU, generator=torch.Generator().manual_seed(1))
    assert names == ["0", "3"]
    var = model[0].weight.detach().double().var().item()
    assert var == pytest.approx(2 / (16 * 25), rel=0.03)
    assert torch.equal(model[4].weight, torch.ones(10))  # BN keeps its own init
    grouped = torch.empty(64, 4, 3, 3)
    init_weight_(grouped, "tanh", groups=4, generator=torch.Generator().manual_seed(2))
    assert grouped.double().var().item() == pytest.approx(1 / ((36 + 16 * 9) / 2), rel=0.03)


def test_scheme_table_and_errors():
    assert init_scheme_for("softmax").name == "glorot"
    assert init_scheme_for(nn.SELU()).name == "lecun"
    assert init_scheme_for("leaky_relu", negative_slope=1.0).scale == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown activation 'sine'"):
        init_scheme_for("sine")
    with pytest.raises(ValueError, match="distribution must be"):
        init_weight_(torch.empty(3, 3), "relu", distribution="cauchy")
    with pytest.raises(ValueError, match="no Linear or ConvNd"):
        init_for_activation(nn.ReLU(), "relu")
