"""Every step protocol runs in the lab, counts its work, and is evaluated at its true iterate."""

import pytest
import torch

from descentlab.lab import RunStore, run_comparison, run_spec
from descentlab.lab.runner import Training
from descentlab.lab.spec import RunSpec
from descentlab.optim.registry import optimizer_classes, step_protocol


def test_every_registered_optimizer_runs_in_compare_on_a_2d_and_a_learning_problem(tmp_path):
    names = sorted(optimizer_classes())
    protocols = {step_protocol(cls) for cls in optimizer_classes().values()}
    assert protocols == {"gradient", "closure", "closure-no-backward", "svrg"}
    summary = run_comparison(
        tmp_path,
        names,
        ["tiny-bowl", "tiny-logreg"],
        [0],
        settings={"steps": 6, "Newton.damping": 1e-3},  # 2-class softmax: a singular Hessian
        lr_grid=None,
    )
    assert summary.ran == 2 * len(names)
    with RunStore(tmp_path) as store:
        runs = store.runs()
    assert {(run["problem"], run["optimizer"]) for run in runs} == {
        (problem, name) for problem in ("tiny-bowl", "tiny-logreg") for name in names
    }
    assert all(run["outcome"] == "completed" and run["summary"].steps == 6 for run in runs), [
        (run["optimizer"], run["problem"], run["outcome"], run["summary"].extra) for run in runs
    ]


def test_svrg_takes_a_full_gradient_snapshot_every_epoch():
    # tiny-logreg: 64 examples in batches of 16, 4 steps an epoch; 8 steps = 2 snapshots of 4 batches
    # plus two gradient evaluations (iterate and snapshot) per step
    result = run_spec(RunSpec.create("tiny-logreg", "svrg", {"lr": 0.1}, steps=8))
    assert result.outcome == "completed"
    assert result.summary.gradient_evaluations == 2 * 4 + 2 * 8
    assert result.summary.loss_evaluations == 2 * 4 + 2 * 8
    assert [r.gradient_evaluations for r in result.records[:3]] == [0, 4 + 2, 4 + 4]


def test_line_search_counts_every_trial_and_newton_counts_its_hessian():
    search = run_spec(RunSpec.create("tiny-bowl", "linesearchgd", {"method": "armijo"}, steps=5))
    assert search.outcome == "completed"
    per_step = [b.loss_evaluations - a.loss_evaluations for a, b in zip(search.records, search.records[1:])]
    assert all(count >= 2 for count in per_step)  # the gradient plus at least one trial
    assert search.summary.gradient_evaluations == search.summary.loss_evaluations
    newton = run_spec(RunSpec.create("tiny-bowl", "newton", {}, steps=3))
    # one gradient and a 2 x 2 Hessian from two Hessian-vector products (2 gradient evaluations each)
    assert newton.summary.gradient_evaluations == 3 * (1 + 2 * 2)
    assert newton.summary.final_metric == pytest.approx(0.0, abs=1e-20)  # a quadratic: one step


def test_nesterov_is_recorded_and_evaluated_at_its_true_iterate():
    """UDL eq. 6.12 in float64: m <- b m + (1-b) grad L(phi - a b m); phi <- phi - a m."""
    lr, beta, steps = 0.3, 0.8, 12
    result = run_spec(RunSpec.create("tiny-bowl", "nesterov", {"lr": lr, "momentum": beta}, steps=steps))
    phi = torch.tensor([-7.0, 2.0], dtype=torch.float64)
    m = torch.zeros(2, dtype=torch.float64)
    expected = [phi.clone()]
    for _ in range(steps):
        look = phi - lr * beta * m
        m = beta * m + (1 - beta) * torch.stack([look[0] / 10, 2 * look[1]])
        phi = phi - lr * m
        expected.append(phi.clone())
    for record in result.records:
        point = expected[record.step]
        assert (record.x, record.y) == pytest.approx((float(point[0]), float(point[1])), rel=1e-12)
    final = float(expected[-1][0] ** 2 / 20 + expected[-1][1] ** 2)
    assert result.summary.final_metric == pytest.approx(final, rel=1e-12)


def test_weight_decay_skips_biases_unless_asked():
    spec = RunSpec.create("tiny-logreg", "adamw", {"lr": 0.1, "weight_decay": 0.1})
    groups = Training(spec).optimizer.param_groups
    assert [(len(g["params"]), g["weight_decay"]) for g in groups] == [(1, 0.1), (1, 0.0)]
    assert groups[1]["params"][0].ndim == 1  # the bias
    everything = RunSpec.create(
        "tiny-logreg", "adamw", {"lr": 0.1, "weight_decay": 0.1}, techniques={"decay_groups": "all"}
    )
    assert [g["weight_decay"] for g in Training(everything).optimizer.param_groups] == [0.1]


def test_swats_reports_its_switch():
    result = run_spec(RunSpec.create("tiny-logreg", "swats", {"lr": 0.01}, steps=30))
    assert result.outcome == "completed"
    assert set(result.summary.extra) == {"switch_steps", "sgd_learning_rates"}


def test_an_optimizer_error_is_an_outcome_not_a_crash():
    # Newton without damping on a 2-class softmax (an exactly singular direction): step 6 gives up
    result = run_spec(RunSpec.create("tiny-logreg", "newton", {"lr": 0.01}, steps=10))
    assert result.outcome == "failed" and result.summary.stop_reason == "failed"
    assert "singular" in result.summary.extra["error"] and result.summary.final_metric is None
    assert result.summary.steps < 10
