"""1cycle: closed form from Smith's description, and agreement with torch's OneCycleLR."""

import math

import pytest
import torch

from descentlab.schedules import HyperparameterScheduler, OneCycle, ScheduledLR, one_cycle, one_cycle_momentum


def interpolate(begin, finish, fraction, anneal):
    if anneal == "cos":
        return finish + (begin - finish) * 0.5 * (1 + math.cos(math.pi * fraction))
    return begin + (finish - begin) * fraction


def one_cycle_reference(t, total, low, high, end, pct, anneal, three_phase):
    """Up from low to high over the first pct of the run, down again, then (three phases) annihilate."""
    if t >= total - 1:
        return end
    rise = pct * total - 1
    if three_phase:
        fall = 2 * pct * total - 2
        if t <= rise:
            return interpolate(low, high, t / rise, anneal)
        if t <= fall:
            return interpolate(high, low, (t - rise) / (fall - rise), anneal)
        return interpolate(low, end, (t - fall) / (total - 1 - fall), anneal)
    if t <= rise:
        return interpolate(low, high, t / rise, anneal)
    return interpolate(high, end, (t - rise) / (total - 1 - rise), anneal)


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_matches_closed_form(anneal, three_phase):
    total = 200
    schedule = one_cycle(total, peak=2.0, pct_start=0.25, anneal=anneal, three_phase=three_phase)
    low, end = 2.0 / 25, 2.0 / 25 / 1e4
    for t in [*range(total), total, total + 10]:
        expected = one_cycle_reference(t, total, low, 2.0, end, 0.25, anneal, three_phase)
        assert schedule(t) == pytest.approx(expected, rel=1e-12, abs=1e-15), t
    assert schedule(0) == pytest.approx(low)
    assert schedule(49) == pytest.approx(2.0)  # the peak sits at step pct * total - 1
    assert max(schedule(t) for t in range(total)) == pytest.approx(2.0)


def torch_one_cycle_run(optimizer_class, total, anneal, three_phase, **optimizer_kwargs):
    """lr and momentum (or beta1) at each step under torch's OneCycleLR."""
    optimizer = optimizer_class([torch.zeros(1, requires_grad=True)], lr=1.0, **optimizer_kwargs)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=0.5,
        total_steps=total,
        pct_start=0.3,
        anneal_strategy=anneal,
        three_phase=three_phase,
    )
    return run_steps(optimizer, scheduler, total)


def run_steps(optimizer, scheduler, steps):
    lrs, momenta = [], []
    for _ in range(steps):
        group = optimizer.param_groups[0]
        lrs.append(group["lr"])
        momenta.append(group["betas"][0] if "betas" in group else group["momentum"])
        optimizer.step()
        if len(lrs) < steps:  # torch's OneCycleLR refuses to step past total_steps
            scheduler.step()
    return lrs, momenta


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
@pytest.mark.parametrize(
    ("optimizer_class", "kwargs", "momentum"),
    [(torch.optim.SGD, {"momentum": 0.9}, "momentum"), (torch.optim.Adam, {}, "betas[0]")],
)
def test_one_cycle_agrees_with_torch_one_cycle_lr(anneal, three_phase, optimizer_class, kwargs, momentum):
    total = 100
    expected_lr, expected_momentum = torch_one_cycle_run(
        optimizer_class, total, anneal, three_phase, **kwargs
    )
    optimizer = optimizer_class([torch.zeros(1, requires_grad=True)], lr=0.5, **kwargs)
    scheduler = HyperparameterScheduler(
        optimizer,
        {
            "lr": one_cycle(total, pct_start=0.3, anneal=anneal, three_phase=three_phase),
            momentum: one_cycle_momentum(total, pct_start=0.3, anneal=anneal, three_phase=three_phase),
        },
    )
    lrs, momenta = run_steps(optimizer, scheduler, total)
    assert lrs == pytest.approx(expected_lr, rel=1e-11, abs=0)
    assert momenta == pytest.approx(expected_momentum, rel=1e-11, abs=0)


def test_one_cycle_momentum_moves_inversely_to_the_learning_rate():
    lr, momentum = one_cycle(100), one_cycle_momentum(100)
    lr_changes = [lr(t + 1) - lr(t) for t in range(98)]
    momentum_changes = [momentum(t + 1) - momentum(t) for t in range(98)]
    assert all(a * b <= 0 for a, b in zip(lr_changes, momentum_changes))
    assert momentum(0) == 0.95 and momentum(29) == pytest.approx(0.85) and momentum(99) == 0.95


def test_one_cycle_as_absolute_learning_rate_with_scheduled_lr():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=123.0)
    scheduler = ScheduledLR(optimizer, one_cycle(50, peak=0.1), relative=False)
    assert scheduler.get_last_lr() == [pytest.approx(0.1 / 25)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"total_steps": 1, "start": 0.1, "peak": 1, "end": 0}, "total_steps must be an integer >= 2"),
        ({"total_steps": 10, "start": 0.1, "peak": 1, "end": 0, "pct_start": 0.05}, "leaves an empty phase"),
        ({"total_steps": 10, "start": 0.1, "peak": 1, "end": 0, "anneal": "cosine"}, "anneal must be"),
        (
            {"total_steps": 10, "start": 0.1, "peak": 1, "end": 0, "pct_start": 0.6, "three_phase": True},
            "empty",
        ),
    ],
)
def test_one_cycle_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OneCycle(**kwargs)
