import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from descentlab.lab import RunStore, run_comparison, run_spec
from descentlab.lab.comparison import LR_GRID, SWEEP_FRACTION
from descentlab.lab.spec import RunSpec
from lab.tiny_problems import register_tiny_problems


def test_store_round_trip_in_wal_mode(tmp_path):
    result = run_spec(RunSpec.create("tiny-logreg", "adam", {"lr": 0.05}, steps=8))
    with RunStore(tmp_path) as store:
        store.save(result)
        store.save(result)  # saving again replaces, never duplicates
        assert store.completed_run_ids() == {result.spec.run_id}
        (run,) = store.runs()
        assert (
            run["spec"] == result.spec and run["outcome"] == "completed" and run["summary"] == result.summary
        )
        assert store.records(result.spec.run_id) == result.records
    mode = sqlite3.connect(tmp_path / "runs.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_sweep_chooses_the_best_rate_by_the_closed_form(tmp_path):
    """SGD on the bowl: the sweep picks the argmin of the closed-form loss after the sweep budget."""
    summary = run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0, 1])
    sweep_steps = round(40 * SWEEP_FRACTION)

    def loss(lr):
        x, y = -7.0 * (1 - lr / 10) ** sweep_steps, 2.0 * (1 - 2 * lr) ** sweep_steps
        return x**2 / 20 + y**2

    assert summary.chosen_lr["tiny-bowl"]["sgd"] == min(LR_GRID, key=loss)
    with RunStore(tmp_path) as store:
        assert len(store.runs("sweep")) == len(LR_GRID)
        runs = store.runs()
    assert {run["seed"] for run in runs} == {0, 1}
    assert all(run["spec"].hyperparameter_dict["lr"] == min(LR_GRID, key=loss) for run in runs)


def test_repeat_skips_finished_runs_and_parallel_equals_serial(tmp_path):
    arguments = (["sgd", "adam"], ["tiny-bowl", "tiny-logreg"], [0, 1])
    serial = run_comparison(tmp_path / "serial", *arguments, lr_grid=(0.01, 0.1))
    assert (serial.ran, serial.skipped) == (8, 0)
    again = run_comparison(tmp_path / "serial", *arguments, lr_grid=(0.01, 0.1))
    assert (again.ran, again.skipped) == (0, 8)
    parallel = run_comparison(
        tmp_path / "parallel", *arguments, lr_grid=(0.01, 0.1), jobs=2, worker_setup=register_tiny_problems
    )
    assert parallel.chosen_lr == serial.chosen_lr and parallel.run_ids == serial.run_ids
    with RunStore(tmp_path / "serial") as first, RunStore(tmp_path / "parallel") as second:
        for run_id in serial.run_ids:
            losses = [r["loss"] for r in first.records(run_id)]
            assert losses == [r["loss"] for r in second.records(run_id)]


_KILLED_SCRIPT = """
import sys
from lab.tiny_problems import register_tiny_problems
register_tiny_problems()
from descentlab.lab import run_comparison
run_comparison(sys.argv[1], ["sgd"], ["tiny-logreg"], range(40), steps=400, lr_grid=None)
"""


def test_sigkill_mid_comparison_loses_nothing_finished(tmp_path):
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-c", _KILLED_SCRIPT, str(tmp_path)], env=environment)
    database = tmp_path / "runs.sqlite"
    try:
        deadline = time.monotonic() + 60
        finished = 0
        while finished < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
            if database.exists():
                try:
                    finished = sqlite3.connect(database).execute("SELECT COUNT(*) FROM runs").fetchone()[0]
                except sqlite3.OperationalError:
                    finished = 0
        assert process.poll() is None, "the comparison finished before it could be killed; make it longer"
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    with RunStore(tmp_path) as store:
        before = {run["run_id"]: run["summary"] for run in store.runs()}
    assert 2 <= len(before) < 40
    summary = run_comparison(tmp_path, ["sgd"], ["tiny-logreg"], range(40), steps=400, lr_grid=None)
    assert summary.skipped == len(before) and summary.ran == 40 - len(before)
    with RunStore(tmp_path) as store:
        after = {run["run_id"]: run["summary"] for run in store.runs()}
    assert len(after) == 40
    # finished runs were not redone: their wall-time measurements are the stored originals
    assert all(after[run_id] == summary_before for run_id, summary_before in before.items())


def test_unknown_names_and_bad_jobs_raise(tmp_path):
    with pytest.raises(ValueError, match="unknown optimizer 'sgdd'"):
        run_comparison(tmp_path, ["sgdd"], ["tiny-bowl"])
    with pytest.raises(ValueError, match="unknown problem 'bowll'"):
        run_comparison(tmp_path, ["sgd"], ["bowll"])
    with pytest.raises(ValueError, match="jobs must be >= 1, got 0"):
        run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], jobs=0)
