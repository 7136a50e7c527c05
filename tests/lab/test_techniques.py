"""Training techniques, stopping rules and instrumentation in the lab, checked against direct computations."""

import math

import pytest
import torch
from torch import nn

from descentlab.lab import run_spec
from descentlab.lab.instruments import activation_statistics, preactivation_statistics
from descentlab.lab.runner import Training, _one_step, _Progress
from descentlab.lab.spec import RunSpec


def logreg(techniques=None, record=None, steps=6, optimizer="sgd", **hyperparameters):
    hyperparameters = {"lr": 1.0, **hyperparameters}
    spec = RunSpec.create(
        "tiny-logreg", optimizer, hyperparameters, techniques=techniques, record=record, steps=steps
    )
    return run_spec(spec)


def test_clip_norm_bounds_every_update_and_records_the_norm_before():
    result = logreg({"clip_norm": 1e-3})
    for record in result.records[1:]:
        assert record.grad_norm > 1e-3  # recorded before clipping
        assert record.update_norm <= 1.0 * 1e-3 * (1 + 1e-5)


def test_clip_value_bounds_every_entry():
    result = logreg({"clip_value": 1e-4})
    # 12 parameters, each moved by at most lr * clip_value (plus float32 spacing)
    assert all(record.update_norm <= math.sqrt(12) * (1e-4 + 1e-7) for record in result.records[1:])


def test_l2_penalty_is_added_to_the_loss_on_the_weights_only():
    """descentlab.training.l2_penalty is (strength / 2) * sum(w^2)."""
    plain, penalised = logreg(steps=1), logreg({"l2": 0.5}, steps=1)
    weight = Training(RunSpec.create("tiny-logreg", "sgd", {"lr": 1.0})).task.model.weight.detach()
    assert penalised.records[1].loss - plain.records[1].loss == pytest.approx(
        0.5 / 2 * float((weight**2).sum()), rel=1e-5
    )


def test_proximal_l1_makes_exact_zeros_and_max_norm_holds():
    spec = RunSpec.create(
        "tiny-logreg", "sgd", {"lr": 1.0}, techniques={"proximal_l1": 0.05, "max_norm": 0.5}, steps=8
    )
    training = Training(spec)

    progress = _Progress()
    for _ in range(8):
        _one_step(training, progress, next(training.task.batches), evaluated=False)
        progress.steps += 1
    weight = training.task.model.weight.detach()
    assert (weight == 0).any()
    assert float(weight.norm(dim=1).max()) <= 0.5 * (1 + 1e-6)


def test_freeze_then_unfreeze_at_a_step():
    result = logreg(
        {"freeze": ("weight",), "unfreeze_at": 3}, record={"record": ("layer_grad_norms",)}, steps=6
    )
    seen = {i.step: set(i.value) for i in result.instruments if i.kind == "layer_grad_norms"}
    assert seen[1] == seen[2] == seen[3] == {"bias"}
    assert seen[4] == seen[6] == {"weight", "bias"}


def test_early_stopping_restores_the_best_weights():
    result = logreg({"early_stopping": 1}, steps=30, lr=30.0)
    assert result.summary.stop_reason == "early_stopping" and result.summary.steps < 30
    assert result.summary.final_metric == result.summary.best_metric


def test_gradient_norm_stop_at_the_closed_form_step():
    """GD on x^2/20 + y^2 from (-7, 2): the gradient at step t is (x_t / 10, 2 y_t)."""
    lr, tolerance = 0.3, 1e-2
    result = run_spec(
        RunSpec.create("tiny-bowl", "sgd", {"lr": lr}, techniques={"grad_tol": tolerance}, steps=500)
    )

    def norm(t):
        return math.hypot(-7.0 * (1 - lr / 10) ** t / 10, 2 * 2.0 * (1 - 2 * lr) ** t)

    # step s records the gradient at the iterate after s - 1 steps
    assert result.summary.stop_reason == "grad_tol"
    assert result.summary.steps == next(s for s in range(1, 500) if norm(s - 1) < tolerance)


def test_techniques_that_do_not_fit_fail_before_training():
    with pytest.raises(ValueError, match="no layer to constrain"):
        run_spec(RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1}, techniques={"max_norm": 1.0}))
    with pytest.raises(ValueError, match="unfreeze_at needs freeze"):
        run_spec(RunSpec.create("tiny-logreg", "sgd", {"lr": 0.1}, techniques={"unfreeze_at": 2}))
    with pytest.raises(ValueError, match="needs a model with activation layers"):
        run_spec(RunSpec.create("tiny-logreg", "sgd", {"lr": 0.1}, record={"record": ("activations",)}))


def test_activation_statistics_by_hand():
    relu = activation_statistics(nn.ReLU(), torch.tensor([0.0, 0.0, 1.0, 3.0]))
    assert relu == {"mean": 1.0, "std": pytest.approx(math.sqrt(2.0)), "saturated": None, "dead": 0.5}
    sigmoid = activation_statistics(nn.Sigmoid(), torch.tensor([0.001, 0.5, 0.995, 0.3]))
    assert sigmoid["saturated"] == 0.5 and sigmoid["dead"] is None


def test_preactivations_are_what_enters_each_activation():
    assert preactivation_statistics(torch.tensor([-1.0, 1.0, 3.0])) == {"mean": 1.0, "std": 2.0}
    spec = RunSpec.create(
        "digits-mlp", "sgd", {"lr": 0.1}, model={"batch_norm": True},
        record={"record": ("preactivations",)}, steps=2, batch_size=32,
    )  # fmt: skip
    records = [i for i in run_spec(spec).instruments if i.kind == "preactivations"]
    assert [i.step for i in records] == [1, 2]
    (values,) = records[0].value.values()  # the one ReLU, after BatchNorm1d: standardised per unit
    assert values["mean"] == pytest.approx(0.0, abs=1e-5) and values["std"] == pytest.approx(1.0, abs=0.01)


def test_activations_and_histograms_on_an_mlp():
    spec = RunSpec.create(
        "digits-mlp",
        "sgd",
        {"lr": 0.1},
        record={"record": ("activations", "histograms"), "histogram_steps": (1, 4)},
        steps=4,
        batch_size=32,
    )
    result = run_spec(spec)
    histograms = [i for i in result.instruments if i.kind == "histograms"]
    assert [i.step for i in histograms] == [1, 4]
    (layer,) = histograms[0].value.values()  # one ReLU in 64-128-10
    assert sum(layer["counts"]) == 32 * 128 and len(layer["edges"]) == len(layer["counts"]) + 1
    statistics = [i for i in result.instruments if i.kind == "activations"]
    assert [i.step for i in statistics] == [1, 2, 3, 4]
    (values,) = statistics[0].value.values()
    assert 0 <= values["dead"] <= 1 and values["mean"] >= 0


def test_line_search_trials_are_recorded():
    result = run_spec(
        RunSpec.create(
            "tiny-bowl", "linesearchgd", {"method": "armijo"}, record={"record": ("line_search",)}, steps=3
        )
    )
    searches = [i for i in result.instruments if i.kind == "line_search"]
    assert [i.step for i in searches] == [1, 2, 3]
    first = searches[0].value
    assert len(first["trial_steps"]) == len(first["trial_losses"]) >= 1
