"""init-activations: the drawn histograms against the mean-field recursion and the book's claims, batch
norm's standardisation, and the drawn gradient norms against torch.autograd on the same network."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional

from descentlab.figures.base import load_runs
from descentlab.figures.init_activations import (
    CONFIGURATIONS,
    GRADIENT_TITLE,
    PREACTIVATION_TITLE,
    Configuration,
    histogram_label,
    init_runs,
    instrument,
)
from descentlab.lab.store import RunStore
from descentlab.problems import get_problem
from descentlab.problems.gaussian_mlp import HIDDEN_LAYERS, WIDTH, gaussian_data
from figures.drawn import drawn_histogram, drawn_line, panel

FIGURE = "init-activations"
LAYERS = range(1, HIDDEN_LAYERS + 1)
NODES, WEIGHTS = np.polynomial.hermite_e.hermegauss(201)
WEIGHTS = WEIGHTS / math.sqrt(2 * math.pi)  # E[f(z)], z ~ N(0, 1), = sum(WEIGHTS * f(NODES))
PHI = {"sigmoid": lambda a: 1 / (1 + np.exp(-a)), "tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0)}


def weight_variance(configuration):
    """Var(w) of a 100 -> 100 layer: a fixed std, Glorot 1/fan_avg, He 2/fan_in."""
    if isinstance(configuration.init, float):
        return configuration.init**2
    return {"glorot": 1.0, "he": 2.0}[configuration.init] / WIDTH


def mean_field(configuration):
    """Per hidden layer, the mean and std of the activations of an infinitely wide net (float64).

    With zero biases and x ~ N(0, I), layer l's pre-activation is N(0, q_l): q_1 = 100 Var(w) E[x^2],
    q_{l+1} = 100 Var(w) E[phi(a_l)^2] (Poole et al., "Exponential expressivity in deep neural networks
    through transient chaos", 2016); the expectations are Gauss-Hermite sums.
    """
    phi, fan_variance = PHI[configuration.activation], WIDTH * weight_variance(configuration)
    q, moments = fan_variance * 1.0, []
    for _ in LAYERS:
        values = phi(math.sqrt(q) * NODES)
        first, second = float(WEIGHTS @ values), float(WEIGHTS @ values**2)
        moments.append((first, math.sqrt(second - first**2)))
        q = fan_variance * second
    return moments


def drawn_fractions(figure, configuration, layer):
    """Bin fractions and edges of a drawn histogram (its heights are densities)."""
    heights, edges = drawn_histogram(figure, histogram_label(configuration, layer))
    return heights * np.diff(edges), edges


def drawn_moments(figure, configuration, layer):
    """Mean, std and second moment of a drawn histogram, each bin at its centre."""
    fractions, edges = drawn_fractions(figure, configuration, layer)
    centres = (edges[:-1] + edges[1:]) / 2
    mean, second = float(fractions @ centres), float(fractions @ centres**2)
    return mean, math.sqrt(max(second - mean**2, 0.0)), second


@pytest.fixture(scope="module")
def figure(made):
    return made[0].figure


def test_every_panel_is_one_layer_of_100_000_activations(figure):
    for configuration in CONFIGURATIONS:
        for layer in LAYERS:
            fractions, _ = drawn_fractions(figure, configuration, layer)
            assert fractions.sum() == pytest.approx(1.0, abs=1e-9)


NO_NORM = [c for c in CONFIGURATIONS if not c.batch_norm]


@pytest.mark.parametrize("configuration", NO_NORM, ids=lambda c: c.label)
def test_drawn_spread_follows_the_mean_field_recursion(figure, configuration):
    """Width 100 is not infinite: measured 0.87-1.01 of the recursion (layer 5 of the sigmoid rows, which
    share one weight draw, scaled, is the farthest), so 15 % bounds it at every depth."""
    for layer, (_, expected_std) in zip(LAYERS, mean_field(configuration)):
        _, std, _ = drawn_moments(figure, configuration, layer)
        assert std == pytest.approx(expected_std, rel=0.15), (configuration.label, layer)


def test_relu_rows_are_one_draw_scaled_by_the_init_std_per_layer(figure):
    """relu(c a) = c relu(a), and every init draws the same normals scaled: with weight std s the layer-l
    activations are (s / 0.1)^l times Xavier's (std 1/sqrt(100) = 0.1), exactly."""
    for configuration, scale in (
        (Configuration("relu", 0.01), 0.1),
        (Configuration("relu", "he"), math.sqrt(2)),
    ):
        for layer in LAYERS:
            expected = scale**layer * drawn_moments(figure, Configuration("relu", "glorot"), layer)[1]
            assert drawn_moments(figure, configuration, layer)[1] == pytest.approx(expected, rel=1e-4)


def test_std_1_sigmoid_piles_at_0_and_1(figure):
    """Pre-activations N(0, q), q ~ 45: a fraction P(|a| > logit(0.95)) ~ 0.66 lies within 0.05 of an end."""
    configuration = Configuration("sigmoid", 1.0)
    for layer in LAYERS:
        fractions, edges = drawn_fractions(figure, configuration, layer)
        near_ends = (edges[1:] <= 0.05 + 1e-9) | (edges[:-1] >= 0.95 - 1e-9)
        assert fractions[near_ends].sum() > 0.55, layer
        assert fractions[(edges[:-1] >= 0.25) & (edges[1:] <= 0.75)].sum() < 0.15, layer


def test_std_001_sigmoid_collapses_onto_one_half(figure):
    """sigmoid(a) ~ 1/2 + a/4 for small a: std 0.01 * 10 / 4 = 0.025 at layer 1, 0.0125 beyond."""
    configuration = Configuration("sigmoid", 0.01)
    for layer in LAYERS:
        _, edges = drawn_fractions(figure, configuration, layer)
        half_width = 0.15 if layer == 1 else 0.05
        assert edges[0] > 0.5 - half_width and edges[-1] < 0.5 + half_width, layer
        mean, std, _ = drawn_moments(figure, configuration, layer)
        assert mean == pytest.approx(0.5, abs=0.01) and std < 0.03, layer


def test_xavier_tanh_keeps_its_spread_within_a_factor_of_two_where_std_001_relu_vanishes(figure):
    tanh = [drawn_moments(figure, Configuration("tanh", "glorot"), layer)[1] for layer in LAYERS]
    relu = [drawn_moments(figure, Configuration("relu", 0.01), layer)[1] for layer in LAYERS]
    assert 0.4 < tanh[-1] / tanh[0] < 1.0
    assert relu[-1] / relu[0] < 1e-3  # mean field: (0.01 * sqrt(100 / 2))^4 = 2.5e-5


def test_he_keeps_relu_second_moment_and_xavier_halves_it_per_layer(figure):
    """E[relu(a)^2] = Var(a) / 2: with Var(w) = 2/100 each layer's second moment is 1 (x ~ N(0, I)); with
    1/100 it halves per layer."""
    he = [drawn_moments(figure, Configuration("relu", "he"), layer)[2] for layer in LAYERS]
    xavier = [drawn_moments(figure, Configuration("relu", "glorot"), layer)[2] for layer in LAYERS]
    assert all(0.8 < value < 1.25 for value in he), he
    ratios = np.array(xavier[1:]) / np.array(xavier[:-1])
    assert np.all((ratios > 0.35) & (ratios < 0.65)), ratios


BATCH_NORM = [c for c in CONFIGURATIONS if c.batch_norm]


def test_batch_norm_standardises_every_pre_activation(figure):
    lines = panel(figure, PREACTIVATION_TITLE)
    for configuration in BATCH_NORM:
        drawn = drawn_line(lines, configuration.label)
        np.testing.assert_array_equal(drawn[:, 0], list(LAYERS))
        # std 0.01 weights give Var(Wh) ~ 3e-3: BatchNorm1d's eps 1e-5 leaves std sqrt(v / (v + eps)) ~ 0.99
        np.testing.assert_allclose(drawn[:, 1], 1.0, atol=0.015)
    plain = drawn_line(lines, "sigmoid, std 1")[:, 1]
    assert np.all(plain > 5)  # without it: q_l ~ 45-100


def test_batch_norm_pre_activation_means_are_zero_in_the_store(made):
    with RunStore(made[1], read_only=True) as store:
        runs = load_runs(store, init_runs())
    for configuration in BATCH_NORM:
        means = [v["mean"] for v in instrument(runs[configuration.label], "preactivations").values()]
        np.testing.assert_allclose(means, 0.0, atol=1e-4)


def test_with_batch_norm_the_weight_scale_no_longer_matters(figure):
    """BN(c W h) = BN(W h): std 1 and std 0.01 (the same draws scaled) give the same histograms, those of
    sigmoid(N(0, 1)) at layer 1, where W x is exactly Gaussian per unit."""
    sigmoid_std = math.sqrt(float(WEIGHTS @ PHI["sigmoid"](NODES) ** 2) - 0.25)
    for layer in LAYERS:
        large = drawn_moments(figure, Configuration("sigmoid", 1.0, batch_norm=True), layer)
        small = drawn_moments(figure, Configuration("sigmoid", 0.01, batch_norm=True), layer)
        assert large[1] == pytest.approx(small[1], rel=0.02) and large[0] == pytest.approx(small[0], abs=0.01)
        assert large[1] == pytest.approx(sigmoid_std, rel=0.03 if layer > 1 else 0.01), layer


def independent_gradient_norms(configuration):
    """||dL/dW|| of every Linear weight: the problem's network for seed 0, mean cross-entropy over all
    1000 training inputs, torch.autograd.grad (train mode: batch norm uses the batch's statistics)."""
    options = {"activation": configuration.activation, "init": configuration.init}
    options["batch_norm"] = configuration.batch_norm
    model = get_problem("gaussian-deep-mlp").task(seed=0, batch_size=1000, options=options).model
    data = gaussian_data()
    weights = [m.weight for m in model if isinstance(m, nn.Linear)]
    loss = functional.cross_entropy(model(data.train_inputs), data.train_labels)
    return [float(torch.linalg.vector_norm(g)) for g in torch.autograd.grad(loss, weights)]


def test_drawn_gradient_norms_equal_torch_autograd(figure):
    lines = panel(figure, GRADIENT_TITLE)
    for configuration in CONFIGURATIONS:
        drawn = drawn_line(lines, configuration.label)
        np.testing.assert_array_equal(drawn[:, 0], range(1, HIDDEN_LAYERS + 2))
        np.testing.assert_allclose(drawn[:, 1], independent_gradient_norms(configuration), rtol=1e-3)
    sigmoid = drawn_line(lines, "sigmoid, std 0.01")[:, 1]
    assert sigmoid[0] / sigmoid[-1] < 1e-6  # vanishing: each layer multiplies by ~ 0.01 * 10 / 4
