import copy
import itertools

import numpy as np
import pytest
import torch

from descentlab.analysis import lr_range_test, plot_lr_range_test, save_figure
from state_checks import state_equal


def train_steps(model, optimizer, loss_fn, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()


def test_model_and_optimizer_are_restored_bit_for_bit(tiny_network):
    model = tiny_network.model
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    train_steps(model, optimizer, tiny_network.loss, 3)  # nonempty optimizer state and gradients
    control_model = copy.deepcopy(model)
    control_optimizer = torch.optim.Adam(control_model.parameters(), lr=0.01, amsgrad=True)
    control_optimizer.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    model_before = copy.deepcopy(model.state_dict())
    optimizer_before = copy.deepcopy(optimizer.state_dict())
    gradients_before = [parameter.grad.clone() for parameter in model.parameters()]

    result = lr_range_test(model, optimizer, tiny_network.loss, steps=60, progress=False)
    assert len(result.learning_rates) > 10

    assert state_equal(model.state_dict(), model_before)
    assert state_equal(optimizer.state_dict(), optimizer_before)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), gradients_before))
    # The optimizer must still drive the same parameters: further training matches an untouched copy.
    train_steps(model, optimizer, tiny_network.loss, 2)
    control_loss = lambda: torch.nn.functional.cross_entropy(  # noqa: E731
        control_model(tiny_network.inputs), tiny_network.labels
    )
    train_steps(control_model, control_optimizer, control_loss, 2)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), control_model.parameters()))


def test_a_fresh_optimizer_stays_fresh(linear_regression):
    optimizer = torch.optim.SGD(linear_regression.model.parameters(), lr=0.1, momentum=0.9)
    lr_range_test(linear_regression.model, optimizer, linear_regression.loss, steps=20, progress=False)
    assert optimizer.state_dict()["state"] == {}
    assert optimizer.param_groups[0]["lr"] == 0.1
    assert all(parameter.grad is None for parameter in linear_regression.model.parameters())


def test_suggestions_on_linear_regression_lie_below_the_stability_limit(linear_regression, tmp_path):
    largest = float(np.linalg.eigvalsh(linear_regression.closed_form_hessian())[-1])
    optimizer = torch.optim.SGD(linear_regression.model.parameters(), lr=1.0)
    result = lr_range_test(
        linear_regression.model, optimizer, linear_regression.loss, 1e-5, 10.0, steps=100, progress=False
    )
    # Gradient descent on a quadratic converges iff lr < 2 / lambda_max; lr = 10 is far beyond that.
    assert result.stopped_early
    assert result.learning_rates[-1] > 2 / largest
    assert set(result.suggestions) == {"steepest", "minimum/10"}
    for rule, value in result.suggestions.items():
        assert 1e-2 / largest < value < 2 / largest, (rule, value, 2 / largest)
    assert "steepest" in result.summary() and "stopped: loss diverged" in result.summary()
    assert save_figure(plot_lr_range_test(result), tmp_path / "lr.png").stat().st_size > 1000


def test_smoothed_loss_is_the_bias_corrected_moving_average(linear_regression):
    optimizer = torch.optim.SGD(linear_regression.model.parameters(), lr=1.0)
    result = lr_range_test(
        linear_regression.model,
        optimizer,
        linear_regression.loss,
        1e-4,
        1e-2,
        steps=30,
        smoothing=0.9,
        progress=False,
    )
    average, expected = 0.0, []
    for step, loss in enumerate(result.losses, start=1):
        average = 0.9 * average + 0.1 * loss
        expected.append(average / (1 - 0.9**step))
    np.testing.assert_allclose(result.smoothed_losses, expected, rtol=1e-14)
    np.testing.assert_allclose(result.learning_rates, np.geomspace(1e-4, 1e-2, 30), rtol=1e-12)
    assert not result.stopped_early


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start_lr": 0.0}, "start_lr must be a finite number > 0, got 0.0"),
        ({"start_lr": 1.0, "end_lr": 0.5}, "end_lr must be finite and > start_lr=1.0, got 0.5"),
        ({"steps": 1}, "steps must be >= 2, got 1"),
        ({"smoothing": 1.0}, r"smoothing must be in \[0, 1\), got 1.0"),
        ({"divergence_factor": 1.0}, "divergence_factor must be > 1, got 1.0"),
    ],
)
def test_bad_options_are_rejected(linear_regression, options, message):
    optimizer = torch.optim.SGD(linear_regression.model.parameters(), lr=1.0)
    with pytest.raises(ValueError, match=message):
        lr_range_test(linear_regression.model, optimizer, linear_regression.loss, **options)


def test_steepest_suggestion_is_not_fooled_by_minibatch_noise():
    # Four minibatches in a cycle leave a periodic ripple on the smoothed loss; with one-step differences
    # (fastai's rule) the steepest point landed on that ripple at lr ~ 5e-7, on the flat plateau.
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(64, 3, generator=generator)
    targets = inputs @ torch.tensor([1.0, -1.0, 0.5]) + 0.1 * torch.randn(64, generator=generator)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    batches = itertools.cycle(torch.randperm(64, generator=generator).reshape(4, 16))

    def loss_fn():
        indices = next(batches)
        return ((model(inputs[indices]).squeeze(-1) - targets[indices]) ** 2).mean()

    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    result = lr_range_test(model, optimizer, loss_fn, steps=200, progress=False)
    lrs, smoothed = np.array(result.learning_rates), np.array(result.smoothed_losses)
    plateau = np.median(smoothed[: len(smoothed) // 2])
    at_steepest = smoothed[np.searchsorted(lrs, result.suggestions["steepest"])]
    assert at_steepest < plateau - 0.1  # well into the descent, not on the plateau
    assert result.suggestions["steepest"] < lrs[np.argmin(smoothed)]
