import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from descentlab.lab import RunStore, run_comparison, run_spec
from descentlab.lab import comparison as comparison_module
from descentlab.lab.comparison import LR_GRID, SWEEP_FRACTION, choose_rate
from descentlab.lab.spec import RunSpec
from descentlab.lab.store import StoreError
from lab.tiny_problems import register_tiny_problems


def test_store_round_trip_in_wal_mode(tmp_path):
    result = run_spec(
        RunSpec.create("tiny-logreg", "adam", {"lr": 0.05}, steps=8, record={"record": ("layer_grad_norms",)})
    )
    with RunStore(tmp_path) as store:
        store.save(result)
        store.save(result)  # saving again replaces, never duplicates
        assert store.completed_run_ids() == {result.spec.run_id}
        (run,) = store.runs()
        assert run["spec"] == result.spec and run["outcome"] == "completed"
        assert run["summary"] == result.summary
        assert store.records(result.spec.run_id) == result.records
        assert store.instruments(result.spec.run_id) == result.instruments
    mode = sqlite3.connect(tmp_path / "runs.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_store_from_an_older_version_gains_the_new_columns(tmp_path):
    RunStore(tmp_path).close()
    connection = sqlite3.connect(tmp_path / "runs.sqlite")
    connection.executescript(  # records as an earlier version wrote them: fewer step-record columns
        "DROP TABLE records; CREATE TABLE records (run_id TEXT, step INTEGER, loss REAL, metrics TEXT,"
        " PRIMARY KEY (run_id, step));"
    )
    connection.close()
    result = run_spec(RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1}, steps=3))
    with RunStore(tmp_path) as store:
        store.save(result)
        assert store.records(result.spec.run_id) == result.records


def test_a_foreign_or_corrupt_file_is_a_clear_error(tmp_path):
    (tmp_path / "runs.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="is not an SQLite database; it is left as it is: move it away"):
        RunStore(tmp_path)
    with pytest.raises(StoreError, match="is not an SQLite database; it is left as it is: move it away"):
        RunStore(tmp_path, read_only=True)


def bowl_loss(lr, steps):
    x, y = -7.0 * (1 - lr / 10) ** steps, 2.0 * (1 - 2 * lr) ** steps
    return x**2 / 20 + y**2


def test_sweep_chooses_the_best_rate_by_the_closed_form(tmp_path):
    """SGD on the bowl: the sweep picks the argmin of the closed-form loss after the sweep budget."""
    summary = run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0, 1])
    sweep_steps = round(40 * SWEEP_FRACTION)
    best = min(LR_GRID, key=lambda lr: bowl_loss(lr, sweep_steps))
    (configuration,) = summary.configurations
    assert configuration.chosen_lr == best and configuration.edge is None
    assert best not in (min(LR_GRID), max(LR_GRID))  # interior, so the grid did not grow
    with RunStore(tmp_path) as store:
        assert len(store.runs("sweep")) == len(LR_GRID)
        runs = store.runs()
    assert {run["seed"] for run in runs} == {0, 1}
    assert all(run["spec"].hyperparameter_dict["lr"] == best for run in runs)


def test_the_sweep_grows_past_an_edge_until_the_best_is_interior(tmp_path):
    summary = run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0], lr_grid=(1e-3, 10**-2.5))
    (configuration,) = summary.configurations
    steps = round(40 * SWEEP_FRACTION)
    # half decades upwards until the rate after the best is worse (closed form: best 10**-0.5)
    assert configuration.grid == pytest.approx([10 ** (k / 2) for k in range(-6, 1)])
    assert configuration.chosen_lr == pytest.approx(10**-0.5) and configuration.edge is None
    assert bowl_loss(1.0, steps) > bowl_loss(10**-0.5, steps) < bowl_loss(0.1, steps)


def test_a_choice_left_at_the_bound_is_flagged(tmp_path, monkeypatch):
    monkeypatch.setattr(comparison_module, "LR_MAX", 0.01)
    summary = run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0], lr_grid=(1e-3, 10**-2.5))
    (configuration,) = summary.configurations
    assert configuration.chosen_lr == pytest.approx(0.01) and configuration.edge == "high"


def test_choose_rate_takes_the_middle_of_ties_and_the_smallest_when_all_diverge():
    assert choose_rate({0.01: 1.0, 0.1: 0.5, 1.0: 0.7}, tolerance=0.0) == 0.1
    assert choose_rate({0.01: 0.5, 0.1: 0.5, 1.0: 0.5}, tolerance=0.0) == 0.1
    assert choose_rate({0.01: 0.5 + 1e-9, 0.1: 0.5, 1.0: 2.0}, tolerance=1e-8) == 0.1
    assert choose_rate({0.01: float("inf"), 0.1: float("inf")}, tolerance=0.0) == 0.01


def test_repeat_skips_finished_runs_and_parallel_equals_serial(tmp_path):
    arguments = (["sgd", "adam"], ["tiny-bowl", "tiny-logreg"], [0, 1])
    serial = run_comparison(tmp_path / "serial", *arguments, lr_grid=(0.01, 0.1, 1.0))
    assert (serial.ran, serial.skipped) == (8, 0)
    again = run_comparison(tmp_path / "serial", *arguments, lr_grid=(0.01, 0.1, 1.0))
    assert (again.ran, again.skipped) == (0, 8)
    parallel = run_comparison(
        tmp_path / "parallel",
        *arguments,
        lr_grid=(0.01, 0.1, 1.0),
        jobs=2,
        worker_setup=register_tiny_problems,
    )
    assert parallel.chosen_lr == serial.chosen_lr and parallel.run_ids == serial.run_ids
    with RunStore(tmp_path / "serial") as first, RunStore(tmp_path / "parallel") as second:
        for run_id in serial.run_ids:
            assert [r.loss for r in first.records(run_id)] == [r.loss for r in second.records(run_id)]


_KILLED_SCRIPT = """
import os, signal, sys
from lab.tiny_problems import register_tiny_problems
register_tiny_problems()
from descentlab.lab import run_comparison, run_spec
done = []

def runner(spec):
    if len(done) == 3:  # the process dies the hard way while the fourth run trains
        os.kill(os.getpid(), signal.SIGKILL)
    done.append(spec)
    return run_spec(spec)

run_comparison(sys.argv[1], ["sgd"], ["tiny-logreg"], range(8), lr_grid=None, runner=runner)
"""


def test_sigkill_mid_comparison_loses_nothing_finished(tmp_path):
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.run(
        [sys.executable, "-c", _KILLED_SCRIPT, str(tmp_path)], env=environment, timeout=120, check=False
    )
    assert process.returncode == -signal.SIGKILL
    with RunStore(tmp_path) as store:
        before = {run["run_id"]: run["summary"] for run in store.runs()}
    assert len(before) == 3
    summary = run_comparison(tmp_path, ["sgd"], ["tiny-logreg"], range(8), lr_grid=None)
    assert summary.skipped == 3 and summary.ran == 5
    with RunStore(tmp_path) as store:
        after = {run["run_id"]: run["summary"] for run in store.runs()}
    assert len(after) == 8
    # finished runs were not redone: their wall-time measurements are the stored originals
    assert all(after[run_id] == summary_before for run_id, summary_before in before.items())


def test_vary_makes_the_product_of_configurations(tmp_path):
    summary = run_comparison(
        tmp_path,
        ["sgd", "adam"],
        ["tiny-logreg"],
        [0],
        settings={"steps": 4, "lr": 0.1, "SGD.momentum": 0.5},
        vary=[("batch_size", ["8", "full"]), ("clip_norm", ["1", "10"])],
        lr_grid=None,
    )
    assert len(summary.configurations) == 2 * 2 * 2 and summary.ran == 8
    sgd = [c.template for c in summary.configurations if c.optimizer == "sgd"]
    assert {spec.batch_size for spec in sgd} == {8, "full"}
    assert {spec.technique_dict["clip_norm"] for spec in sgd} == {1.0, 10.0}
    assert all(spec.hyperparameter_dict == {"lr": 0.1, "momentum": 0.5} for spec in sgd)
    adam = [c.template for c in summary.configurations if c.optimizer == "adam"]
    assert all(spec.hyperparameter_dict == {"lr": 0.1} for spec in adam)


def test_unknown_names_keys_and_bad_jobs_raise(tmp_path):
    with pytest.raises(ValueError, match="unknown optimizer 'sgdd'"):
        run_comparison(tmp_path, ["sgdd"], ["tiny-bowl"])
    with pytest.raises(ValueError, match="unknown problem 'bowll'"):
        run_comparison(tmp_path, ["sgd"], ["bowll"])
    with pytest.raises(ValueError, match="jobs must be >= 1, got 0"):
        run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], jobs=0)
    with pytest.raises(ValueError, match="unknown setting 'momentun' for SGD"):
        run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], settings={"momentun": 0.9})
    with pytest.raises(ValueError, match="steps must be a whole number >= 1, got True"):
        run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], settings={"steps": True})
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got 0\.0"):
        run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], settings={"lr": "0"})
