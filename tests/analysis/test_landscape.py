import numpy as np
import pytest
import torch
from torch import nn

from descentlab.analysis import (
    filter_normalized_direction,
    interpolate_1d,
    loss_surface_2d,
    parameter_vector,
    plot_interpolation,
    plot_loss_surface,
    save_figure,
)
from descentlab.analysis.parameter_vector import assign_parameter_vector
from state_checks import state_equal


def snapshot(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def test_interpolation_endpoints_equal_the_losses_at_the_two_vectors(tiny_network):
    model = tiny_network.model
    start = parameter_vector(model)
    end = start + torch.randn(start.shape, generator=torch.Generator().manual_seed(5), dtype=start.dtype)
    before = snapshot(model)
    curve = interpolate_1d(model, tiny_network.loss, start, end, points=11, progress=False)
    assert state_equal(snapshot(model), before)
    assign_parameter_vector(model, end)
    loss_at_end = float(tiny_network.loss().detach())
    assign_parameter_vector(model, start)
    assert curve.losses[0].item() == float(tiny_network.loss().detach())
    assert curve.losses[-1].item() == loss_at_end


def test_interpolation_of_a_quadratic_loss_is_a_parabola(linear_regression, tmp_path):
    start = parameter_vector(linear_regression.model)
    end = torch.as_tensor(linear_regression.least_squares_solution())
    alphas = torch.linspace(-0.5, 1.5, 21, dtype=torch.float64)
    curve = interpolate_1d(
        linear_regression.model, linear_regression.loss, start, end, alphas, progress=False
    )
    design = np.hstack([linear_regression.inputs.numpy(), np.ones((40, 1))])
    thetas = (1 - alphas.numpy())[:, None] * start.numpy() + alphas.numpy()[:, None] * end.numpy()
    expected = ((thetas @ design.T - linear_regression.targets.numpy()) ** 2).mean(axis=1)
    np.testing.assert_allclose(curve.losses.numpy(), expected, rtol=1e-12)
    assert int(np.argmin(curve.losses.numpy())) == 15  # alpha = 1, the least-squares solution
    assert save_figure(plot_interpolation(curve), tmp_path / "line.png").stat().st_size > 1000


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.norm = nn.BatchNorm2d(3)
        self.linear = nn.Linear(12, 2)

    def forward(self, inputs):
        return self.linear(torch.relu(self.norm(self.conv(inputs))).flatten(1))


def test_filter_normalised_direction_has_the_weights_filter_norms():
    torch.manual_seed(0)
    model = ConvNet().double()
    direction = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    offset = 0
    for name, parameter in model.named_parameters():
        piece = direction[offset : offset + parameter.numel()].reshape(parameter.shape)
        offset += parameter.numel()
        if parameter.dim() >= 2:
            for filter_index in range(parameter.shape[0]):
                assert float(piece[filter_index].norm()) == pytest.approx(
                    float(parameter[filter_index].detach().norm()), rel=1e-9
                ), name
            assert not torch.allclose(piece, parameter.detach())  # random, not the weights themselves
        else:
            assert torch.equal(piece, torch.zeros_like(piece)), name
    normalized = filter_normalized_direction(
        model, torch.Generator().manual_seed(0), one_dimensional="normalize"
    )
    bias = normalized[54:57]  # conv.bias follows the 3x2x3x3 conv weight
    assert float(bias.norm()) == pytest.approx(float(model.conv.bias.detach().norm()), rel=1e-9)


def test_zero_rule_refuses_a_model_with_only_one_dimensional_parameters():
    model = nn.Module()
    model.point = nn.Parameter(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="one_dimensional='normalize'"):
        filter_normalized_direction(model)


def test_loss_surface_matches_closed_form_and_announces_its_cost_first(linear_regression, tmp_path):
    model = linear_regression.model
    calls = []

    def loss_fn():
        calls.append(1)
        return linear_regression.loss()

    first = torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64)
    second = torch.tensor([0, 0, 0, 0, 1.0], dtype=torch.float64)
    reports = []
    before = snapshot(model)
    surface = loss_surface_2d(
        model,
        loss_fn,
        (first, second),
        x_range=(-2, 1),
        y_range=(-1, 1),
        resolution=7,
        progress=False,
        report=lambda line: reports.append((line, len(calls))),
    )
    assert state_equal(snapshot(model), before)
    assert len(reports) == 1 and reports[0][1] == 2  # announced after two timing calls, before the grid
    assert reports[0][0].startswith("loss surface: 49 loss evaluations, about")
    assert surface.cost.evaluations == 49 and len(calls) == 2 + 49
    theta = parameter_vector(model).numpy()
    design = np.hstack([linear_regression.inputs.numpy(), np.ones((40, 1))])
    for j, y in enumerate(surface.ys.tolist()):
        for i, x in enumerate(surface.xs.tolist()):
            shifted = theta + x * first.numpy() + y * second.numpy()
            expected = ((design @ shifted - linear_regression.targets.numpy()) ** 2).mean()
            assert surface.losses[j, i].item() == pytest.approx(expected, rel=1e-12)
    assert surface.center_loss == pytest.approx(float(linear_regression.loss().detach()), rel=1e-15)
    assert save_figure(plot_loss_surface(surface), tmp_path / "surface.png").stat().st_size > 1000


def test_loss_surface_restores_parameters_and_batch_norm_buffers_bit_for_bit():
    torch.manual_seed(0)
    model = ConvNet()
    inputs = torch.randn(8, 2, 4, 4)
    labels = torch.randint(0, 2, (8,))
    model.train()  # training mode: every evaluation updates the running statistics
    before = snapshot(model)
    surface = loss_surface_2d(
        model,
        lambda: nn.functional.cross_entropy(model(inputs), labels),
        resolution=4,
        progress=False,
        report=None,
    )
    assert torch.isfinite(surface.losses).all()
    assert state_equal(snapshot(model), before)


def test_loss_surface_restores_even_when_the_loss_fails(linear_regression):
    model = linear_regression.model
    before = snapshot(model)
    calls = []

    def failing_loss():
        calls.append(1)
        if len(calls) > 5:
            raise RuntimeError("data went away")
        return linear_regression.loss()

    with pytest.raises(RuntimeError, match="data went away"):
        loss_surface_2d(
            model, failing_loss, resolution=4, one_dimensional="normalize", progress=False, report=None
        )
    assert state_equal(snapshot(model), before)


def test_loss_surface_rejects_bad_options(linear_regression):
    with pytest.raises(ValueError, match=r"resolution must be in \[2, 1001\], got 1"):
        loss_surface_2d(linear_regression.model, linear_regression.loss, resolution=1)
    with pytest.raises(ValueError, match="x_range must be"):
        loss_surface_2d(linear_regression.model, linear_regression.loss, x_range=(1, -1))
