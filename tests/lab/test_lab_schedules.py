"""The lab's schedule specs build descentlab.schedules and give their closed forms step by step."""

import math

import pytest
import torch

from descentlab.lab.fields import SCHEDULE_NAMES, SettingError
from descentlab.lab.schedules import build_scheduler
from descentlab.optim.registry import make_optimizer


def rates(spec, steps=20, lr=0.1, optimizer="sgd", **hyperparameters):
    optimizer = make_optimizer(optimizer, [torch.zeros(1, requires_grad=True)], lr=lr, **hyperparameters)
    scheduler = build_scheduler(spec, optimizer, steps)
    seen = []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        seen.append((group["lr"], group.get("momentum", group.get("betas", (None,))[0])))
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return [lr for lr, _ in seen], [momentum for _, momentum in seen]


def test_constant_and_none_keep_the_rate():
    assert rates(None)[0] == [0.1] * 20 and rates({"name": "constant"})[0] == [0.1] * 20


@pytest.mark.parametrize(
    ("spec", "closed_form"),
    [
        ({"name": "cosine"}, lambda t, T: (1 + math.cos(math.pi * t / T)) / 2),
        ({"name": "linear"}, lambda t, T: 1 - t / T),
        ({"name": "polynomial"}, lambda t, T: (1 - t / T) ** 2),
        ({"name": "exponential"}, lambda t, T: 0.1 ** (t / (T / 2))),
        ({"name": "power"}, lambda t, T: 1 / (1 + t / (T / 10))),
        ({"name": "step", "every": 5, "gamma": 0.5}, lambda t, T: 0.5 ** (t // 5)),
        ({"name": "piecewise"}, lambda t, T: 1.0 if t < T // 2 else 0.1 if t < 3 * T // 4 else 0.01),
        ({"name": "restarts", "period": 5}, lambda t, T: (1 + math.cos(math.pi * (t % 5) / 5)) / 2),
        (
            {"name": "cosine", "warmup": 4},
            lambda t, T: t / 4 if t < 4 else (1 + math.cos(math.pi * (t - 4) / (T - 4))) / 2,
        ),
        ({"name": "constant", "warmup": 0.25}, lambda t, T: min(1.0, t / 5)),
    ],
)
def test_schedules_follow_their_closed_forms(spec, closed_form):
    steps = 20
    seen, _ = rates(spec, steps)
    assert seen == pytest.approx([0.1 * closed_form(t, steps) for t in range(steps)], abs=1e-12)


def test_onecycle_and_wsd_shapes():
    seen, _ = rates({"name": "onecycle"}, steps=40)
    # torch's OneCycleLR convention: the peak is at step pct_start * total - 1
    assert max(seen) == pytest.approx(0.1) and seen.index(max(seen)) == 11
    assert seen[0] == pytest.approx(0.1 / 25) and seen[-1] < 0.1 / 25
    wsd, _ = rates({"name": "wsd"}, steps=40)
    assert wsd[0] == 0 and wsd[2] == pytest.approx(0.1) and wsd[20] == pytest.approx(0.1) and wsd[-1] < 0.05


def test_momentum_cycles_inversely_in_onecycle():
    _, momentum = rates({"name": "onecycle", "momentum": "onecycle"}, steps=40, momentum=0.9)
    assert momentum[0] == pytest.approx(0.95) and min(momentum) == pytest.approx(0.85)
    assert momentum.index(min(momentum)) == 11
    _, beta1 = rates({"name": "constant", "momentum": "onecycle"}, steps=40, optimizer="adam")
    assert beta1[0] == pytest.approx(0.95) and min(beta1) == pytest.approx(0.85)


def test_plateau_reduces_after_patience_evaluations():
    optimizer = make_optimizer("sgd", [torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = build_scheduler({"name": "plateau", "patience": 2}, optimizer, 100)
    for metric in (1.0, 0.5, 0.5, 0.5):  # two reports without a gain: patience not yet exceeded
        scheduler.step(metric)
    assert optimizer.param_groups[0]["lr"] == 1.0
    scheduler.step(0.5)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_every_declared_name_builds():
    for name in SCHEDULE_NAMES:
        optimizer = make_optimizer("sgd", [torch.zeros(1, requires_grad=True)], lr=0.1)
        scheduler = build_scheduler({"name": name}, optimizer, 50)
        assert (scheduler is None) == (name == "constant")


def test_bad_schedules_name_the_problem():
    with pytest.raises(SettingError, match="unknown schedule 'cosin'; choose one of constant, step"):
        rates({"name": "cosin"})
    with pytest.raises(SettingError, match=r"unknown option.*'cosine': min_lr"):
        rates({"name": "cosine", "min_lr": 3})
    with pytest.raises(SettingError, match="warmup must be shorter than the run"):
        rates({"name": "cosine", "warmup": 30})
    with pytest.raises(SettingError, match="momentum_schedule=onecycle: Adagrad has neither"):
        rates({"name": "constant", "momentum": "onecycle"}, optimizer="adagrad")
