"""Processes sharing one results folder train each run once, and a killed one blocks no one."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest

from descentlab.lab import RunStore, run_comparison
from descentlab.lab import store as store_module
from descentlab.lab.store import DATABASE_NAME
from lab.claim_runner import logging_runner
from lab.tiny_problems import register_tiny_problems

SEEDS, GRID = range(8), (0.01, 0.1, 1.0)

_COMPARE = """
import json, os, pathlib, sys, time
from lab.tiny_problems import register_tiny_problems
register_tiny_problems()
from descentlab.lab import run_comparison
from lab.claim_runner import logging_runner
folder = sys.argv[1]
pathlib.Path(folder, "ready-" + os.environ["CLAIM_OWNER"]).touch()
deadline = time.monotonic() + 60
while not pathlib.Path(folder, "go").exists() and time.monotonic() < deadline:
    time.sleep(0.01)  # start together with the other process: imports take seconds
summary = run_comparison(folder, ["sgd"], ["tiny-bowl"], range(8), lr_grid=(0.01, 0.1, 1.0),
                         runner=logging_runner, worker_setup=register_tiny_problems)
print(json.dumps({"ran": summary.ran, "skipped": summary.skipped}))
"""


def start(folder, owner, **environment):
    """Start a compare of sgd on tiny-bowl (3 sweep + 8 seeded runs) that waits for ``folder/go``."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "CLAIM_LOG": str(folder / "trained.log"),
        "CLAIM_OWNER": owner,
        **environment,
    }
    command = [sys.executable, "-c", _COMPARE, str(folder)]
    return subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def trained(folder):
    """``(owner, run_id)`` of every run started, from the runner's log."""
    return [tuple(line.split()) for line in (folder / "trained.log").read_text().splitlines()]


def test_two_compares_on_one_folder_train_every_run_once(tmp_path):
    processes = {"a": start(tmp_path, "a"), "b": start(tmp_path, "b")}
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{owner}").exists() for owner in processes):
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes.values())
        time.sleep(0.05)
    (tmp_path / "go").touch()
    outputs = {owner: process.communicate(timeout=240) for owner, process in processes.items()}
    assert all(process.returncode == 0 for process in processes.values()), outputs
    summaries = {owner: json.loads(out.splitlines()[-1]) for owner, (out, _) in outputs.items()}
    log = trained(tmp_path)
    counts = Counter(run_id for _, run_id in log)
    with RunStore(tmp_path, read_only=True) as store:
        sweep, compare = store.runs("sweep"), store.runs("compare")
    assert len(sweep) == len(GRID) and len(compare) == len(SEEDS)
    assert set(counts) == {run["run_id"] for run in sweep + compare}
    assert max(counts.values()) == 1, counts  # no run trained twice
    assert {owner for owner, _ in log} == {"a", "b"}  # and the two really shared the work
    assert sum(summary["ran"] for summary in summaries.values()) == len(SEEDS)
    assert all(summary["ran"] + summary["skipped"] == len(SEEDS) for summary in summaries.values())


def test_a_claim_left_by_a_killed_compare_blocks_no_later_one(tmp_path, monkeypatch):
    killed = start(tmp_path, "killed", CLAIM_KILL_AT="2")
    (tmp_path / "go").touch()
    killed.communicate(timeout=120)  # reaped: its pid no longer exists
    assert killed.returncode == -signal.SIGKILL
    connection = sqlite3.connect(tmp_path / DATABASE_NAME)
    (claim,) = connection.execute("SELECT run_id, pid FROM claims").fetchall()
    connection.close()
    assert claim[1] == killed.pid  # the run it was training is still claimed by the dead process
    monkeypatch.setenv("CLAIM_LOG", str(tmp_path / "trained.log"))
    monkeypatch.setenv("CLAIM_OWNER", "later")
    started = time.monotonic()
    run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], SEEDS, lr_grid=GRID, runner=logging_runner)
    assert time.monotonic() - started < store_module.CLAIM_LEASE_SECONDS / 2  # taken over at once
    assert ("later", claim[0]) in trained(tmp_path)
    with RunStore(tmp_path, read_only=True) as store:
        assert len(store.runs("sweep")) == len(GRID) and len(store.runs("compare")) == len(SEEDS)


def insert_claim(folder, run_id, host, pid, heartbeat):
    connection = sqlite3.connect(folder / DATABASE_NAME)
    with connection:
        connection.execute(
            "INSERT INTO claims VALUES (?, 'someone', ?, ?, ?, ?)", (run_id, host, pid, heartbeat, heartbeat)
        )
    connection.close()


@pytest.mark.parametrize(
    ("host", "alive", "age", "taken"),
    [
        ("elsewhere", False, 0.0, False),  # another host: trusted while refreshed
        ("elsewhere", False, 2.0, True),  # ... and expired once not refreshed for a lease
        ("here", True, 0.0, False),  # this host, process alive
        ("here", False, 0.0, True),  # this host, process gone: expired at once
        ("here", True, 2.0, True),  # alive but not refreshing (hung, or a reused pid)
    ],
)
def test_which_claims_are_live(host, alive, age, taken, tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid = sleeper.pid
        if not alive:
            sleeper.kill()
            sleeper.wait(timeout=30)
        host = store_module._HOST if host == "here" else "elsewhere.example"
        with RunStore(tmp_path) as store:
            insert_claim(tmp_path, "run-a", host, pid, time.time() - age * store_module.CLAIM_LEASE_SECONDS)
            assert store.claim(["run-a"]) == ("run-a" if taken else None)
    finally:
        sleeper.kill()
        sleeper.wait(timeout=30)


def test_claims_are_refreshed_while_held_and_released_on_save_and_close(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "CLAIM_LEASE_SECONDS", 0.4)  # a beat every 0.1 s
    register_tiny_problems()
    summary = run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0], lr_grid=None)
    (run_id,) = summary.run_ids

    def claims():
        connection = sqlite3.connect(tmp_path / DATABASE_NAME)
        rows = connection.execute("SELECT run_id, claimed_at, heartbeat FROM claims").fetchall()
        connection.close()
        return rows

    assert claims() == []  # released when the run was saved
    with RunStore(tmp_path) as store:
        assert store.claim([run_id, "run-b"]) == "run-b"  # a stored run is never claimed
        time.sleep(0.6)
        ((_, claimed_at, heartbeat),) = claims()
        assert heartbeat > claimed_at  # refreshed past the lease, so still live
        other = RunStore(tmp_path)
        assert other.claim(["run-b"]) is None
        other.close()
    assert claims() == []  # released on close
