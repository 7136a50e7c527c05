"""descentlab's schedules drive descentlab's optimizers exactly as they drive torch.optim's."""

import copy

import pytest
import torch

import descentlab.optim as dl
from descentlab.schedules import Cosine, HyperparameterScheduler, Warmup, one_cycle, one_cycle_momentum


def _params():
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(4, 3, generator=generator, dtype=torch.float64).requires_grad_() for _ in range(2)]


def _train(optimizer, params, scheduler, steps=30):
    for _ in range(steps):
        optimizer.zero_grad()
        sum(((p - 0.3) ** 2 + 0.1 * p**4).sum() for p in params).backward()
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize(
    ("ours", "theirs", "key"),
    [(dl.Adam, torch.optim.Adam, "betas[0]"), (dl.SGD, torch.optim.SGD, "momentum")],
)
def test_one_cycle_with_momentum_cycling_matches_torch(ours, theirs, key):
    runs = []
    for cls in (ours, theirs):
        params = _params()
        hyper = {"lr": 0.05} if cls in (dl.Adam, torch.optim.Adam) else {"lr": 0.05, "momentum": 0.9}
        optimizer = cls(params, **hyper)
        scheduler = HyperparameterScheduler(optimizer, {"lr": one_cycle(30), key: one_cycle_momentum(30)})
        _train(optimizer, params, scheduler)
        runs.append(params)
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_warmup_cosine_state_round_trip_with_descentlab_optimizer():
    params = _params()
    optimizer = dl.AdamW(params, lr=0.01)
    scheduler = HyperparameterScheduler(optimizer, {"lr": Warmup("linear", 5, then=Cosine(25))})
    _train(optimizer, params, scheduler, steps=10)
    state = (optimizer.state_dict(), scheduler.state_dict(), [p.detach().clone() for p in params])
    saved = copy.deepcopy(state)  # state_dict holds live tensors that the next steps update
    _train(optimizer, params, scheduler, steps=10)
    expected = [p.detach().clone() for p in params]

    resumed = [p.clone().detach().requires_grad_() for p in saved[2]]
    optimizer2 = dl.AdamW(resumed, lr=0.01)
    optimizer2.load_state_dict(saved[0])
    scheduler2 = HyperparameterScheduler(optimizer2, {"lr": Warmup("linear", 5, then=Cosine(25))})
    scheduler2.load_state_dict(saved[1])
    _train(optimizer2, resumed, scheduler2, steps=10)
    for a, b in zip(resumed, expected):
        assert torch.equal(a, b)
