import math

import pytest
import torch

from descentlab.lab.runner import DIVERGENCE_FACTOR, run_spec
from descentlab.lab.spec import RunSpec


def test_sgd_on_the_bowl_follows_the_closed_form():
    """Plain GD on x^2/20 + y^2 scales x by (1 - lr/10) and y by (1 - 2 lr) each step."""
    lr, steps = 0.3, 40
    result = run_spec(RunSpec.create("tiny-bowl", "sgd", {"lr": lr}, steps=steps))
    assert result.outcome == "completed" and result.summary.steps == steps
    records = result.records
    assert [r.step for r in records] == list(range(steps + 1))
    for record in records:
        t = record.step
        x, y = -7.0 * (1 - lr / 10) ** t, 2.0 * (1 - 2 * lr) ** t
        assert record.x == pytest.approx(x, rel=1e-12, abs=1e-14)
        assert record.y == pytest.approx(y, rel=1e-12, abs=1e-14)
        if t == 0:
            continue
        x_prev, y_prev = -7.0 * (1 - lr / 10) ** (t - 1), 2.0 * (1 - 2 * lr) ** (t - 1)
        gradient = math.hypot(x_prev / 10, 2 * y_prev)
        assert record.loss == pytest.approx(x_prev**2 / 20 + y_prev**2, rel=1e-12)
        assert record.grad_norm == pytest.approx(gradient, rel=1e-9)
        assert record.update_norm == pytest.approx(lr * gradient, rel=1e-9)
        assert record.lr == lr
        assert record.seconds >= record.optimizer_seconds > 0
    final = (-7.0 * (1 - lr / 10) ** steps) ** 2 / 20 + (2.0 * (1 - 2 * lr) ** steps) ** 2
    assert result.summary.final_metric == pytest.approx(final, rel=1e-10)
    # target 0.5: the first evaluated step at or below it (evaluation every steps // 50 = 1 step)
    losses = [
        (-7.0 * (1 - lr / 10) ** t) ** 2 / 20 + (2.0 * (1 - 2 * lr) ** t) ** 2 for t in range(steps + 1)
    ]
    assert result.summary.steps_to_target == next(t for t, value in enumerate(losses) if value <= 0.5)


def test_divergence_is_an_outcome_with_the_documented_rule():
    result = run_spec(RunSpec.create("tiny-blowup", "sgd", {"lr": 0.01}, steps=200))
    assert result.outcome == "diverged"
    # loss = -100 r^2, gradient -200 xy: r grows by (1 + 200 lr) = 3 a step;
    # diverged at the first step with |loss| > 1e3 * max(|L(step 1)|, 1)
    initial = 100 * 0.5
    threshold = DIVERGENCE_FACTOR * initial
    expected = next(t for t in range(1, 200) if 100 * 0.5 * (3.0 ** (t - 1)) ** 2 > threshold)
    assert result.summary.steps == expected
    assert result.summary.final_metric is None and result.summary.final_loss is None


def test_nan_is_divergence_not_a_crash():
    result = run_spec(RunSpec.create("tiny-bowl", "sgd", {"lr": 1e30}, steps=5))
    assert result.outcome == "diverged" and result.summary.steps < 5


def test_same_seed_gives_the_same_data_and_init_across_optimizers():
    sgd = run_spec(RunSpec.create("tiny-logreg", "sgd", {"lr": 0.1}, seed=4, steps=3))
    adam = run_spec(RunSpec.create("tiny-logreg", "adam", {"lr": 0.1}, seed=4, steps=3))
    other_seed = run_spec(RunSpec.create("tiny-logreg", "adam", {"lr": 0.1}, seed=5, steps=3))
    # step 0 metrics and the first minibatch loss depend only on data, order and init
    assert sgd.records[0].metrics == adam.records[0].metrics
    assert sgd.records[1].loss == adam.records[1].loss
    assert other_seed.records[1].loss != adam.records[1].loss


def test_epoch_budget_and_per_epoch_validation():
    result = run_spec(RunSpec.create("tiny-logreg", "adam", {"lr": 0.01}, epochs=3, batch_size=16))
    assert result.summary.steps == 3 * 4
    assert [r.step for r in result.records if r.metrics] == [0, 4, 8, 12]


def test_cosine_schedule_records_the_closed_form_rate():
    lr, steps = 0.2, 10
    result = run_spec(
        RunSpec.create("tiny-bowl", "sgd", {"lr": lr}, schedule={"name": "cosine"}, steps=steps)
    )
    for record in result.records[1:]:
        t = record.step - 1
        assert record.lr == pytest.approx(lr * (1 + math.cos(math.pi * t / steps)) / 2, abs=1e-12)


def test_bad_hyperparameters_raise_value_error():
    with pytest.raises(ValueError, match="bad hyperparameters for SGD"):
        run_spec(RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1, "colour": 1}, steps=2))
    with pytest.raises(ValueError, match="unknown problem 'nope'"):
        run_spec(RunSpec.create("nope", "sgd", {"lr": 0.1}, steps=2))


def test_runs_leave_the_global_default_dtype_alone():
    before = torch.get_default_dtype()
    run_spec(RunSpec.create("tiny-logreg", "sgd", {"lr": 0.1}, steps=2))
    assert torch.get_default_dtype() == before
