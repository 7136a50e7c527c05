"""Schedule-Free SGD and AdamW beyond the contract rows: the average x, train()/eval(), exact resume.

The contract rows (cases_schedule_free.py) compare the parameters, which hold y, with the float64
references; here the average x (what eval() puts in the parameters) is compared with the reference's x
over 120 steps on every harness problem, and the mode switches and checkpoints are checked bit for bit.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from optim_harness import PROBLEMS, make_tensors

import descentlab.optim as dl
from reference.schedule_free import schedule_free_adamw_step, schedule_free_sgd_step

_AVERAGING = {"warmup_steps": 10, "r": 0.0, "weight_lr_power": 2.0, "weight_decay": 0.01}
CONFIGURATIONS = [
    (dl.ScheduleFreeSGD, schedule_free_sgd_step, {**_AVERAGING, "lr": 0.001, "momentum": 0.9}),
    (
        dl.ScheduleFreeAdamW,
        schedule_free_adamw_step,
        {**_AVERAGING, "lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "variant": "paper"},
    ),
    (
        dl.ScheduleFreeAdamW,
        schedule_free_adamw_step,
        {**_AVERAGING, "lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "variant": "authors-code"},
    ),
]
IDS = ["sgd", "adamw-paper", "adamw-authors-code"]
STEPS = 120


def _run(optimizer, tensors, problem, steps, start=0):
    for _ in range(start, start + steps):
        grads = problem.gradient([t.detach().numpy() for t in tensors])
        for tensor, grad in zip(tensors, grads):
            tensor.grad = torch.from_numpy(np.asarray(grad, dtype=np.float64)).reshape(tensor.shape)
        optimizer.step()


@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
@pytest.mark.parametrize(("cls", "reference", "hyper"), CONFIGURATIONS, ids=IDS)
def test_eval_puts_the_papers_average_x_in_the_parameters(cls, reference, hyper, problem):
    tensors = make_tensors(problem)
    optimizer = cls(tensors, **hyper)
    _run(optimizer, tensors, problem, STEPS)
    # The reference: every tensor stepped from the same start with the gradient at the joint y.
    ys = [p.astype(np.float64).copy() for p in problem.initial]
    states = [{} for _ in ys]
    for t in range(1, STEPS + 1):
        grads = problem.gradient(ys)
        ys = [reference(y, g, state, hyper, t) for y, g, state in zip(ys, grads, states)]
    optimizer.eval()
    for tensor, state, initial in zip(tensors, states, problem.initial):
        np.testing.assert_allclose(tensor.detach().numpy(), state["x"], rtol=1e-10, atol=1e-12)
        assert not np.allclose(state["x"], initial)  # the average moved
    optimizer.train()
    for tensor, y in zip(tensors, ys):
        np.testing.assert_allclose(tensor.detach().numpy(), y, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("cls", "reference", "hyper"), CONFIGURATIONS, ids=IDS)
def test_eval_train_and_at_iterate_restore_y_bit_for_bit(cls, reference, hyper):
    problem = PROBLEMS[0]
    tensors = make_tensors(problem)
    optimizer = cls(tensors, **hyper)
    _run(optimizer, tensors, problem, 15)
    y = [t.detach().clone() for t in tensors]
    x = [optimizer.state[t]["x"].clone() for t in tensors]
    with optimizer.at_iterate():
        assert all(torch.equal(t, average) for t, average in zip(tensors, x))
        with optimizer.at_iterate():  # nested: stays at x, and the outer block restores y
            assert all(torch.equal(t, average) for t, average in zip(tensors, x))
        assert all(torch.equal(t, average) for t, average in zip(tensors, x))
    assert all(torch.equal(t, held) for t, held in zip(tensors, y))
    optimizer.eval()
    optimizer.eval()  # idempotent, as the authors'
    optimizer.train()
    optimizer.train()
    assert all(torch.equal(t, held) for t, held in zip(tensors, y))


def test_step_in_eval_mode_is_refused_with_the_fix():
    param = torch.ones(3, dtype=torch.float64, requires_grad=True)
    optimizer = dl.ScheduleFreeSGD([param], lr=0.1)
    optimizer.eval()  # before any step: nothing to switch, x = y = z
    assert torch.equal(param, torch.ones(3, dtype=torch.float64))
    param.grad = torch.ones(3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"eval mode.*call optimizer.train\(\)"):
        optimizer.step()
    optimizer.train()
    optimizer.step()
    assert optimizer.param_groups[0]["k"] == 1


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize(("cls", "reference", "hyper"), CONFIGURATIONS, ids=IDS)
def test_resume_from_a_checkpoint_is_bit_for_bit(cls, reference, hyper, mode):
    """Model and optimizer saved mid-run (in either mode) continue exactly as the uninterrupted run."""
    problem = PROBLEMS[0]
    tensors = make_tensors(problem)
    optimizer = cls(tensors, **hyper)
    _run(optimizer, tensors, problem, 12)
    if mode == "eval":
        optimizer.eval()
    saved_params = [t.detach().clone() for t in tensors]
    saved = copy.deepcopy(optimizer.state_dict())
    optimizer.train()
    _run(optimizer, tensors, problem, 12, start=12)

    resumed_tensors = [p.clone().requires_grad_() for p in saved_params]
    resumed = cls(resumed_tensors, **{**hyper, "lr": 123.0})  # everything must come from the checkpoint
    resumed.load_state_dict(saved)
    resumed.train()
    _run(resumed, resumed_tensors, problem, 12, start=12)
    for a, b in zip(tensors, resumed_tensors):
        assert torch.equal(a, b)
    for key in ("k", "lr_max", "weight_sum", "scheduled_lr", "train_mode"):
        assert resumed.param_groups[0][key] == optimizer.param_groups[0][key]


def test_authors_reconstruction_of_x_from_y_and_z_holds():
    """The authors store only z and recover x = (y - (1 - beta) z) / beta: that identity holds here."""
    problem = PROBLEMS[0]
    tensors = make_tensors(problem)
    optimizer = dl.ScheduleFreeSGD(tensors, lr=0.001, momentum=0.8)
    _run(optimizer, tensors, problem, 30)
    for tensor in tensors:
        state = optimizer.state[tensor]
        recovered = (tensor.detach() - 0.2 * state["z"]) / 0.8
        torch.testing.assert_close(recovered, state["x"], rtol=1e-12, atol=1e-13)


def test_without_warmup_the_average_is_uniform():
    """Eq. (3): c_{t+1} = 1 / (t + 1), so with momentum 1 (gradients at x) x is the mean of z_1..z_{t+1}."""
    param = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimizer = dl.ScheduleFreeSGD([param], lr=0.5, momentum=1.0)
    zs = [np.zeros(2)]
    for step in range(1, 6):
        param.grad = torch.tensor([1.0, -2.0 * step], dtype=torch.float64)
        optimizer.step()
        zs.append(zs[-1] - 0.5 * param.grad.numpy())
    optimizer.eval()
    np.testing.assert_allclose(param.detach().numpy(), np.mean(zs[1:], axis=0), rtol=1e-14)


def test_the_lab_evaluates_records_and_ends_at_x():
    """The runner's generic ``at_iterate`` hook: positions and final metrics are those of x, not y."""
    from descentlab.lab.runner import Training, train
    from descentlab.lab.spec import RunSpec

    spec = RunSpec(problem="bowl", optimizer="ScheduleFreeSGD", hyperparameters=(("lr", 0.5),), steps=20)
    training = Training(spec)
    result = train(training)
    optimizer, params = training.optimizer, training.parameters
    x = torch.cat([optimizer.state[p]["x"].reshape(-1) for p in params]).double()
    y = torch.cat([p.detach().reshape(-1) for p in params]).double()
    assert result.outcome == "completed" and optimizer.param_groups[0]["train_mode"]
    assert not torch.allclose(x, y)  # the two points differ, so the check below can fail
    last = result.records[-1]
    assert (last.x, last.y) == (float(x[0]), float(x[1]))
    with optimizer.at_iterate():
        expected = training.task.evaluate()
    assert result.summary.final_metric == pytest.approx(expected[training.problem.metric], rel=1e-12)


def test_compare_runs_both_through_the_cli(tmp_path, capsys):
    """``descentlab compare`` with both classes (AdamW in its authors' variant too) on a 2-D problem."""
    import argparse

    from descentlab._cli import lab as lab_cli
    from descentlab.lab import RunStore

    parser = argparse.ArgumentParser(prog="descentlab")
    lab_cli.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "runs"
    commands = [
        [
            "compare",
            "--optimizers",
            "ScheduleFreeSGD,ScheduleFreeAdamW",
            "--problems",
            "bowl",
            "--seeds",
            "0",
        ],
        ["run", "--problem", "bowl", "--optimizer", "ScheduleFreeAdamW", "--variant", "authors-code"],
    ]
    for argv in commands:
        extra = ["--no-sweep", "--jobs", "1"] if argv[0] == "compare" else ["--set", "warmup_steps=5"]
        args = parser.parse_args([*argv, "--steps", "30", "--out", str(out), *extra])
        assert args.handler(args) == 0
    capsys.readouterr()
    with RunStore(out) as store:
        runs = store.runs(purpose=None)
    assert {run["optimizer"] for run in runs} == {"schedulefreesgd", "schedulefreeadamw"}
    assert {run["spec"].variant for run in runs} == {None, "authors-code"}
    assert len(runs) == 3 and all(run["outcome"] == "completed" for run in runs)


@pytest.mark.parametrize("cls", [dl.ScheduleFreeSGD, dl.ScheduleFreeAdamW])
def test_differentiable_steps_give_the_finite_difference_gradient(cls):
    """d(loss at x and y after 5 steps) / d(start) with differentiable=True, vs central differences."""
    weights = torch.arange(1.0, 4.0, dtype=torch.float64)

    def final_loss(start, differentiable):
        param = start.clone() if differentiable else start.detach().clone().requires_grad_()
        optimizer = cls([param], lr=0.1, weight_decay=0.01, differentiable=differentiable)
        for _ in range(5):
            loss = (weights * (param - 1.0) ** 2).sum()
            (param.grad,) = torch.autograd.grad(loss, param, create_graph=differentiable)
            optimizer.step()
        return (optimizer.state[param]["x"] ** 2).sum() + (param**2).sum()

    start = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(final_loss(start, True), start)
    step = 1e-6
    differences = [
        float(final_loss(start.detach() + step * e, False) - final_loss(start.detach() - step * e, False))
        / (2 * step)
        for e in torch.eye(3, dtype=torch.float64)
    ]
    np.testing.assert_allclose(gradient.numpy(), differences, rtol=1e-6)


def test_a_lowered_lr_keeps_the_authors_lr_max_weights():
    """The documented departure: weights use max_i gamma_i (the authors' lr_max), not gamma_t^2.

    Gradient 1 with gradients at x (momentum 1) and lr 1, 1, 0.5, 0.5: z_2..z_5 = -1, -2, -2.5, -3. With
    lr_max = 1 every weight is 1, so x_5 is their mean, -2.125; the paper's gamma_t^2 would give -1.75.
    """
    param = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = dl.ScheduleFreeSGD([param], lr=1.0, momentum=1.0)
    for lr in (1.0, 1.0, 0.5, 0.5):
        optimizer.param_groups[0]["lr"] = lr
        param.grad = torch.ones(1, dtype=torch.float64)
        optimizer.step()
    assert optimizer.state[param]["z"].item() == -3.0
    assert optimizer.state[param]["x"].item() == pytest.approx(-2.125, rel=1e-15)
