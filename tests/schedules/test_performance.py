"""Performance scheduling: the same reductions as torch's ReduceLROnPlateau, and usable in compositions."""

import random

import pytest
import torch

from descentlab.schedules import Cosine, Plateau, ScheduledLR, Sequence, Warmup

CONFIGS = [
    {"mode": "min", "factor": 0.5, "patience": 2, "threshold": 1e-2, "threshold_mode": "rel", "cooldown": 0},
    {"mode": "min", "factor": 0.1, "patience": 0, "threshold": 0.05, "threshold_mode": "abs", "cooldown": 3},
    {"mode": "max", "factor": 0.3, "patience": 4, "threshold": 1e-3, "threshold_mode": "rel", "cooldown": 1},
    {"mode": "max", "factor": 0.7, "patience": 1, "threshold": 0.0, "threshold_mode": "abs", "cooldown": 2},
]


def metric_stream(seed, length=150):
    """A noisy metric that improves, stalls, improves again: enough plateaus to trigger reductions."""
    generator = random.Random(seed)
    value, stream = 10.0, []
    for step in range(length):
        trend = -0.2 if (step // 25) % 2 == 0 else 0.0
        value += trend + generator.gauss(0.0, 0.05)
        stream.append(value)
    return stream


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_plateau_reduces_exactly_like_torch(config, seed):
    metrics = metric_stream(seed)
    if config["mode"] == "max":
        metrics = [-m for m in metrics]
    base_lr, min_lr = 0.8, 0.8 * 1e-3

    torch_optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(torch_optimizer, min_lr=min_lr, **config)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = ScheduledLR(optimizer, Plateau(min_value=1e-3, **config))

    expected, ours = [], []
    for metric in metrics:
        torch_optimizer.step()
        reference.step(metric)
        optimizer.step()
        scheduler.step(metric)
        expected.append(torch_optimizer.param_groups[0]["lr"])
        ours.append(optimizer.param_groups[0]["lr"])
    assert len(set(expected)) >= 3, "the metric stream should trigger at least two reductions"
    assert ours == pytest.approx(expected, rel=1e-12)


def test_plateau_respects_min_value():
    plateau = Plateau(initial=1.0, factor=0.1, patience=0, min_value=0.05)
    for step in range(10):
        plateau.report(1.0, step)
    assert plateau(10) == 0.05
    assert plateau.state.reductions == 2  # 1 -> 0.1 -> 0.05, then nothing left to reduce


def test_nan_metric_counts_as_no_improvement():
    plateau = Plateau(patience=1, factor=0.5)
    plateau.report(1.0, 0)
    plateau.report(float("nan"), 1)
    plateau.report(float("nan"), 2)
    assert plateau(3) == 0.5


def test_plateau_after_warmup_and_cosine_in_one_scheduler():
    # torch cannot express this: ReduceLROnPlateau does not fit inside SequentialLR.
    schedule = Warmup(
        "linear", 5, then=Sequence([(10, Cosine(10, 1.0, 0.2)), (None, Plateau(0.2, patience=1))])
    )
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.01)
    scheduler = ScheduledLR(optimizer, schedule)
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(25):
        optimizer.step()
        scheduler.step(1.0)  # a metric that never improves after its first report
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs[:5] == pytest.approx([0.01 * t / 5 for t in range(5)])
    assert lrs[5] == pytest.approx(0.01) and lrs[15] == pytest.approx(0.002)
    # plateau from step 15: report at 15 sets the best, 16 and 17 are bad -> reduce after the second
    assert lrs[16:19] == pytest.approx([0.002, 0.002, 0.0002])


def test_plateau_rejects_bad_arguments():
    for kwargs, message in [
        ({"factor": 1.0}, "factor must be < 1"),
        ({"patience": -1}, "patience must be an integer >= 0, got -1"),
        ({"mode": "lowest"}, "mode must be 'min' or 'max'"),
        ({"threshold_mode": "relative"}, "threshold_mode must be 'rel' or 'abs'"),
        ({"threshold": -0.1}, "threshold must be >= 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            Plateau(**kwargs)
    with pytest.raises(ValueError, match="Plateau state needs keys"):
        Plateau().load_state_dict({"value": 1.0})
