import random

import numpy as np
import pytest
import torch
from torch import nn

from descentlab.training import load_checkpoint, save_checkpoint


def _build(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    return model, optimizer, scheduler


def _train(model, optimizer, scheduler, generator, steps):
    for _ in range(steps):
        # Every RNG source feeds the run, so a resume that forgot any of them would diverge.
        x = torch.randn(8, 5, generator=generator) + float(np.random.randn()) + random.random()
        y = torch.randn(8, 1)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        scheduler.step()


def _seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def test_resume_is_bit_identical(tmp_path):
    n = 7
    model, optimizer, scheduler = _build(0)
    _seed_all(123)
    generator = torch.Generator().manual_seed(9)
    _train(model, optimizer, scheduler, generator, 2 * n)
    straight = [p.detach().clone() for p in model.parameters()]

    model, optimizer, scheduler = _build(0)
    _seed_all(123)
    generator = torch.Generator().manual_seed(9)
    _train(model, optimizer, scheduler, generator, n)
    path = save_checkpoint(
        tmp_path / "run.pt", model, optimizer, scheduler, generators={"data": generator}, extra={"step": n}
    )
    assert [f.name for f in tmp_path.iterdir()] == ["run.pt"]  # no temporary file left behind

    _seed_all(999)  # scramble everything before resuming into fresh objects
    model, optimizer, scheduler = _build(1)
    generator = torch.Generator().manual_seed(0)
    extra = load_checkpoint(path, model, optimizer, scheduler, generators={"data": generator})
    assert extra == {"step": n}
    _train(model, optimizer, scheduler, generator, n)
    resumed = list(model.parameters())
    for a, b in zip(straight, resumed):
        assert torch.equal(a, b)
    assert optimizer.param_groups[0]["lr"] == 0.01 * 0.5 ** ((2 * n) // 3)


def test_resume_without_rng_restore_diverges(tmp_path):
    model, optimizer, scheduler = _build(0)
    _seed_all(5)
    g = torch.Generator().manual_seed(1)
    path = save_checkpoint(tmp_path / "a.pt", model, optimizer, scheduler, generators={"data": g})
    _train(model, optimizer, scheduler, g, 3)
    reference = [p.detach().clone() for p in model.parameters()]
    model, optimizer, scheduler = _build(0)
    _seed_all(6)
    load_checkpoint(path, model, optimizer, scheduler, generators={"data": g}, restore_rng=False)
    _train(model, optimizer, scheduler, g, 3)
    assert any(not torch.equal(a, b) for a, b in zip(reference, model.parameters()))


def test_errors(tmp_path):
    model, optimizer, _ = _build(0)
    path = save_checkpoint(tmp_path / "m.pt", model)
    with pytest.raises(KeyError, match="no optimizer state"):
        load_checkpoint(path, model, optimizer)
    with pytest.raises(KeyError, match="no state for generators"):
        load_checkpoint(path, model, generators={"data": torch.Generator()})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_checkpoint(tmp_path / "missing" / "m.pt", model)
