import multiprocessing
import os
import random
import re
import signal
import stat
import time

import numpy as np
import pytest
import torch
from torch import nn

from descentlab.training import CheckpointError, load_checkpoint, save_checkpoint


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


class _RunsCodeWhenUnpickled:
    """Unpickling calls ``open(marker, "w")``: proof that a loader executed code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write_tensor(path, good):
    torch.save(torch.zeros(3), path)


def _write_state_dict(path, good):
    torch.save(nn.Linear(2, 2).state_dict(), path)


def _write_empty(path, good):
    path.write_bytes(b"")


def _write_truncated(path, good):
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])


def _write_random(path, good):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _write_code(path, good):
    torch.save({"format_version": 1, "model": _RunsCodeWhenUnpickled(path.with_suffix(".ran"))}, path)


def _write_future_version(path, good):
    torch.save({"format_version": 99}, path)


@pytest.mark.parametrize(
    "write, problem",
    [
        (_write_tensor, "holds a Tensor, not a checkpoint"),
        (_write_state_dict, r"holds a dict without 'format_version' \(keys: bias, weight\).*load_state_dict"),
        (_write_empty, "is empty"),
        (_write_truncated, r"is damaged \(truncated or corrupted"),
        (_write_random, "is not a checkpoint: it starts with 0x"),
        (_write_code, r"holds objects other .*\(refused: io.open\).*arbitrary code"),
        (_write_future_version, "checkpoint format 99, expected 1"),
    ],
)
def test_a_bad_file_is_an_error_that_names_it(tmp_path, write, problem):
    model = nn.Linear(2, 2)
    good = save_checkpoint(tmp_path / "good.pt", model)
    path = tmp_path / "bad.pt"
    write(path, good)
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*" + problem):
        load_checkpoint(path, model)
    assert not path.with_suffix(".ran").exists(), "the loader ran code from the file"


def test_a_folder_or_a_missing_file_is_named(tmp_path):
    model = nn.Linear(2, 2)
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path)) + " is a folder; pass the file"):
        load_checkpoint(tmp_path, model)
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*nothere.pt does not exist"):
        load_checkpoint(tmp_path / "nothere.pt", model)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600)])
def test_permissions_follow_the_umask(tmp_path, mask, expected):
    path = tmp_path / "run.pt"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)  # the replaced file's bits must not carry over
    original = os.umask(mask)
    try:
        save_checkpoint(path, nn.Linear(2, 2))
    finally:
        os.umask(original)
    assert stat.S_IMODE(path.stat().st_mode) == expected


def test_the_file_is_fsynced_then_renamed_then_the_folder_fsynced(tmp_path, file_events):
    save_checkpoint(tmp_path / "run.pt", nn.Linear(2, 2))
    assert file_events == ["fsync file", "replace onto run.pt"] + (
        ["fsync folder"] if os.name == "posix" else []
    )


def _save_forever(path, model):
    while True:
        save_checkpoint(path, model)


def _wait_for_a_new_temporary(folder, old_names, at_least):
    """Return once a file not in ``old_names`` holds ``at_least`` bytes: a save is midway."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for name in {path.name for path in folder.iterdir()} - old_names:
            try:
                if (folder / name).stat().st_size >= at_least:
                    return
            except FileNotFoundError:
                pass  # that save finished and renamed its temporary; wait for the next one
        time.sleep(0.001)
    raise TimeoutError(f"no save started in {folder} within 30 s")


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and fork")
def test_a_save_killed_midway_leaves_nothing_the_next_save_does_not_remove(tmp_path):
    # 32 MB of known values, so each save takes long enough to be killed while its temporary is growing.
    model = nn.Linear(1, 1)
    model.register_buffer("big", torch.arange(8_000_000, dtype=torch.float32))
    path = save_checkpoint(tmp_path / "run.pt", model)
    context = multiprocessing.get_context("fork")  # a real process, without re-importing torch
    stray_counts = []
    for _ in range(4):
        old_names = {file.name for file in tmp_path.iterdir()}
        writer = context.Process(target=_save_forever, args=(path, model))
        writer.start()
        _wait_for_a_new_temporary(tmp_path, old_names, at_least=2**20)
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        stray_counts.append(sum(file.name != "run.pt" for file in tmp_path.iterdir()))
    # Each writer's first save removed the temporaries of the writers killed before it, so strays never pile
    # up (before that fix: [1, 2, 3, 4]). A 0 is a kill that landed between two saves, rare but possible.
    assert set(stray_counts) <= {0, 1} and 1 in stray_counts, stray_counts
    fresh = nn.Linear(1, 1)
    fresh.register_buffer("big", torch.zeros(8_000_000))
    load_checkpoint(path, fresh)  # the last complete save is intact under the final name
    assert torch.equal(fresh.big, model.big)
    save_checkpoint(path, model)
    assert [file.name for file in tmp_path.iterdir()] == ["run.pt"]
