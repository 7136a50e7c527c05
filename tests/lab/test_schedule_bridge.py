import math

import pytest
import torch

from descentlab.lab.schedule_bridge import build_scheduler
from descentlab.optim.registry import make_optimizer


def rates(spec, steps=10, lr=0.1):
    optimizer = make_optimizer("sgd", [torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = build_scheduler(spec, optimizer, steps)
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return seen


def test_constant_and_none_keep_the_rate():
    assert rates(None) == [0.1] * 10 and rates({"name": "constant"}) == [0.1] * 10


def test_step_and_exponential_match_closed_forms():
    assert rates({"name": "step", "step_size": 4, "gamma": 0.5}) == pytest.approx(
        [0.1 * 0.5 ** (t // 4) for t in range(10)]
    )
    # default gamma: the rate falls 100x over the run
    assert rates({"name": "exponential"}) == pytest.approx([0.1 * 0.01 ** (t / 10) for t in range(10)])


def test_onecycle_peaks_at_max_lr():
    seen = rates({"name": "onecycle", "max_lr": 0.5, "pct_start": 0.3}, steps=20)
    assert max(seen) == pytest.approx(0.5) and seen[0] < 0.05 and seen[-1] < 1e-3
    assert not any(math.isnan(value) for value in seen)


def test_bad_schedules_name_the_problem():
    with pytest.raises(ValueError, match="unknown schedule 'cosin'; choose one of constant, step"):
        rates({"name": "cosin"})
    with pytest.raises(ValueError, match="unknown options for schedule 'cosine': warmup"):
        rates({"name": "cosine", "warmup": 3})
