"""schedules: the learning rate each panel draws against closed forms and torch's own schedulers."""

import math

import numpy as np
import pytest
import torch

from descentlab.figures.schedules import PEAK_LR, STEPS, WARMUP_STEPS
from figures.drawn import drawn_line, panel

FIGURE = "schedules"
T = STEPS


def closed_form(title, t):
    """The lab's documented default of each schedule (lab/schedules.py), as a multiplier at step t."""
    if title == "power":  # 1 / (1 + t / (T / 10))
        return 1 / (1 + t / (T / 10))
    if title == "exponential":  # 0.1 ** (t / (T / 2))
        return 0.1 ** (t / (T / 2))
    if title == "piecewise constant":  # 1, 0.1 from T/2, 0.01 from 3T/4
        return 1.0 if t < T // 2 else 0.1 if t < 3 * T // 4 else 0.01
    if title.startswith("cosine"):  # linear warm-up from 0, then a cosine to 0 over the rest
        if t < WARMUP_STEPS:
            return t / WARMUP_STEPS
        return 0.5 * (1 + math.cos(math.pi * (t - WARMUP_STEPS) / (T - WARMUP_STEPS)))
    if title == "warmup-stable-decay":  # 5 % warm-up from 0, hold, last 20 % as 1 - sqrt
        warmup, decay = round(0.05 * T), round(0.2 * T)
        if t < warmup:
            return t / warmup
        if t < T - decay:
            return 1.0
        return 1 - math.sqrt((t - (T - decay)) / decay)
    raise KeyError(title)


def used_by_step(steps):
    """The drawn x is the step; the rate used by step s >= 1 is the schedule after s - 1 updates."""
    return np.maximum(steps - 1, 0)


@pytest.mark.parametrize(
    "title",
    [
        "power",
        "exponential",
        "piecewise constant",
        f"cosine, {WARMUP_STEPS}-step warm-up",
        "warmup-stable-decay",
    ],
)
def test_fixed_schedules_draw_their_closed_form(made, title):
    result, _ = made
    drawn = drawn_line(panel(result.figure, title), "lr")
    assert len(drawn) == T + 1
    expected = [PEAK_LR * closed_form(title, t) for t in used_by_step(drawn[:, 0])]
    np.testing.assert_allclose(drawn[:, 1], expected, rtol=1e-6, atol=1e-12)


def torch_rates(make_scheduler, metrics=None):
    """The rate torch's scheduler gives each step 1..T (``metrics``: {step: value} reported after it)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=PEAK_LR)
    scheduler = make_scheduler(optimizer)
    rates = []
    for step in range(1, T + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if metrics is None:
            scheduler.step()
        elif step in metrics:
            scheduler.step(metrics[step])
    return np.array(rates)


def test_one_cycle_matches_torch_one_cycle_lr(made):
    result, _ = made
    drawn = drawn_line(panel(result.figure, "1cycle"), "lr")
    expected = torch_rates(
        lambda optimizer: torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=PEAK_LR, total_steps=T, cycle_momentum=False
        )
    )
    np.testing.assert_allclose(drawn[1:, 1], expected, rtol=1e-6, atol=1e-12)


def test_performance_schedule_matches_torch_reduce_on_plateau_fed_the_stored_metrics(made):
    result, folder = made
    from descentlab.lab.store import RunStore

    with RunStore(folder, read_only=True) as store:
        (run,) = [r for r in store.runs(purpose=None) if r["spec"].schedule_dict == {"name": "plateau"}]
        records = store.records(run["run_id"])
    metrics = {r.step: r.metrics["loss"] for r in records if r.metrics and r.step > 0}
    expected = torch_rates(
        lambda optimizer: torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=3),
        metrics,
    )
    drawn = drawn_line(panel(result.figure, "performance (plateau)"), "lr")
    np.testing.assert_allclose(drawn[1:, 1], expected, rtol=1e-6)
    assert expected.min() < PEAK_LR / 10, "the noisy bowl levels off, so the rate must drop at least once"
