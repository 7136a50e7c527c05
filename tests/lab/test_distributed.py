"""The lab across processes and machines: studies in a shared storage finished by tune workers and
reported from anywhere, and comparisons whose runs are Ray tasks.

The tests with the real parts are slow by nature (each starts processes that import torch, plus a
PostgreSQL server or a local Ray instance): 30 s to 100 s each on 2 busy cores; every wait is bounded.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from descentlab.cli import main
from descentlab.lab import RunStore
from descentlab.lab import tuning as tuning_module
from descentlab.lab.runner import run_spec
from descentlab.lab.tuning import PURPOSE, TuneOptions, database_url, run_tuning
from lab.postgres import postgres_server

optuna.logging.set_verbosity(optuna.logging.WARNING)

TRIALS = 6
TUNE = ["tune", "--optimizers", "SGD", "--problems", "tiny-logreg", "--trials", str(TRIALS), "--seeds", "0,1"]
WORKER_TIMEOUT = 180

_WORKER_SCRIPT = """
import os, signal, sys, time
from pathlib import Path
from lab.tiny_problems import register_tiny_problems
register_tiny_problems()
from descentlab.cli import main
from descentlab.lab import tuning
from descentlab.lab.runner import run_spec

# beats fast, so that a killed worker's trial goes stale in 4 s rather than 2 minutes
tuning.HEARTBEAT_SECONDS, tuning.POLL_SECONDS = 1, 0.2
me, other, kill_at, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
trained = []

def runner(spec, on_evaluation=None):
    if not trained:  # both workers are inside a trial before either goes on: they share the study
        (folder / me).touch()
        deadline = time.monotonic() + 60
        while not (folder / other).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    if len(trained) == kill_at:  # dies the hard way while this trial trains
        os.kill(os.getpid(), signal.SIGKILL)
    trained.append(spec)
    time.sleep(0.3)  # a trial long enough that the two workers interleave
    return run_spec(spec, on_evaluation)

tuning.run_spec = runner
sys.exit(main(sys.argv[5:]))
"""


@pytest.fixture(scope="module")
def postgres():
    """One real server for this module's tests (each test makes its own database)."""
    with postgres_server() as server:
        yield server


def _start_worker(tmp_path, url, me, other, kill_at=-1):
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    arguments = [me, other, str(kill_at), str(tmp_path)]
    command = [*TUNE, "--storage", url, "--worker", "--out", str(tmp_path / f"machine-{me}")]
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER_SCRIPT, *arguments, *command],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(workers):
    """Wait for every worker (bounded); their return codes."""
    codes = []
    for worker in workers:
        try:
            _, errors = worker.communicate(timeout=WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            worker.kill()
            _, errors = worker.communicate()
        codes.append(worker.returncode)
        if worker.returncode not in (0, -signal.SIGKILL):
            print(errors.decode(errors="replace"), file=sys.stderr)
    return codes


def _trials_of(url):
    (summary,) = optuna.get_all_study_summaries(database_url(url))
    study = optuna.load_study(study_name=summary.study_name, storage=database_url(url))
    return study.trials


def _trained_runs(folder):
    if not (folder / "runs.sqlite").exists():
        return []
    with RunStore(folder) as store:
        return [run["run_id"] for run in store.runs(PURPOSE)]


def _report_from_storage(tmp_path, url):
    """``report --storage`` from a third machine: the re-runs of the best trial on every seed."""
    folder = tmp_path / "reporting-machine"
    assert main(["report", str(folder), "--storage", url, "--jobs", "1"]) == 0
    with RunStore(folder) as store:
        (meta,) = store.comparisons().values()
        return meta, store.runs("compare")


def test_plain_postgresql_urls_get_the_psycopg_driver_and_others_stay_as_given():
    assert database_url("postgresql://me@db.example/lab") == "postgresql+psycopg://me@db.example/lab"
    assert (
        database_url("postgres://me:pw@db.example:5433/lab")
        == "postgresql+psycopg://me:pw@db.example:5433/lab"
    )
    for url in ("postgresql+psycopg2://me@db/lab", "sqlite:////tmp/studies.sqlite", "mysql://me@db/lab"):
        assert database_url(url) == url


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--address", "127.0.0.1:6379"], "--address 127.0.0.1:6379 needs --executor ray"),
        (["--executor", "dask"], "--executor must be one of processes, ray, got 'dask'"),
    ],
)
def test_bad_executor_options_are_one_line_errors_before_any_run(tmp_path, capsys, arguments, message):
    compare = ["compare", "--optimizers", "SGD", "--problems", "tiny-bowl", "--out", str(tmp_path)]
    assert main([*compare, *arguments]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not (tmp_path / "runs.sqlite").exists()


def test_report_from_a_storage_reruns_the_finished_tunes_and_lists_the_others(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    options = TuneOptions(trials=2, storage=url, worker=True)
    worker = run_tuning(tmp_path / "worker", ["adam"], ["tiny-logreg"], [0, 1], options=options)
    assert worker.comparisons == [] and worker.trials_trained == 2
    calls = []

    def crash_on_second_trial(spec, on_evaluation=None):
        calls.append(spec)
        if len(calls) == 2:
            raise RuntimeError("the machine went away")
        return run_spec(spec, on_evaluation)

    monkeypatch.setattr(tuning_module, "run_spec", crash_on_second_trial)
    options = TuneOptions(trials=3, storage=url, worker=True)
    with pytest.raises(RuntimeError, match="went away"):  # leaves its second trial running: unfinished
        run_tuning(tmp_path / "crashed", ["sgd"], ["tiny-logreg"], [0], options=options)
    monkeypatch.undo()
    assert main(["report", str(tmp_path / "elsewhere"), "--storage", url, "--jobs", "1"]) == 0
    messages = capsys.readouterr().err
    assert "tiny-logreg/sgd/small/3x30steps" in messages and "1 of 3 trials finished" in messages
    with RunStore(tmp_path / "elsewhere") as store:
        (meta,) = store.comparisons().values()
        reruns = store.runs("compare")
    assert [c["optimizer"] for c in meta["configurations"]] == ["adam"]
    assert sorted(run["seed"] for run in reruns) == [0, 1]
    assert (tmp_path / "elsewhere" / "report.html").exists()


def test_two_workers_finish_one_postgres_study_with_no_trial_lost_or_duplicated(tmp_path, postgres):
    url = postgres.create_database("two_workers")
    codes = _finish([_start_worker(tmp_path, url, "a", "b"), _start_worker(tmp_path, url, "b", "a")])
    assert codes == [0, 0]
    trials = _trials_of(url)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # only a worker that asked in the same instant as the other for the last place fails its trial
    assert all(t.user_attrs.get("surplus") for t in trials if t.state != TrialState.COMPLETE)
    assert len(complete) == TRIALS
    run_ids = [t.user_attrs["run_id"] for t in complete]
    assert len(set(run_ids)) == TRIALS  # six distinct configurations, none run twice
    on_a, on_b = _trained_runs(tmp_path / "machine-a"), _trained_runs(tmp_path / "machine-b")
    assert on_a and on_b  # both workers trained trials of the one study
    assert sorted(on_a + on_b) == sorted(run_ids)  # each trial trained exactly once, by one worker
    meta, reruns = _report_from_storage(tmp_path, url)
    best = max(complete, key=lambda t: t.value)  # accuracy: higher is better
    assert sorted(run["seed"] for run in reruns) == [0, 1]
    assert all(run["spec"].hyperparameter_dict == best.user_attrs["hyperparameters"] for run in reruns)
    (configuration,) = meta["configurations"]
    assert (configuration["tuning"]["complete"], configuration["tuning"]["trials"]) == (TRIALS, TRIALS)
    assert meta["tuning"]["storage"] == url


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_worker_killed_mid_trial_leaves_the_study_consistent(tmp_path, postgres):
    url = postgres.create_database("killed_worker")
    started = time.monotonic()
    dying = _start_worker(tmp_path, url, "a", "b", kill_at=1)
    codes = _finish([dying, _start_worker(tmp_path, url, "b", "a")])
    assert codes == [-signal.SIGKILL, 0]
    trials = _trials_of(url)
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == TRIALS
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    (killed,) = [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get("surplus")]
    retried_trial_number = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number
    (retry,) = [t for t in trials if retried_trial_number(t) == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    killed_run = killed.user_attrs["run_id"]
    assert killed_run not in _trained_runs(tmp_path / "machine-a")  # died before its run was stored
    assert _trained_runs(tmp_path / "machine-b").count(killed_run) == 1  # the survivor trained it once
    meta, _ = _report_from_storage(tmp_path, url)
    assert meta["configurations"][0]["tuning"]["complete"] == TRIALS
    assert time.monotonic() - started < WORKER_TIMEOUT


_RAY_COMPARE_SCRIPT = """
import sys
from descentlab.cli import main
from descentlab.lab.executors import pool_factory

pool_factory("ray")  # imports Ray as `compare --executor ray` does, before this script touches it
import ray

through_ray, addresses = 0, set()
wait = ray.wait

def counting_wait(*arguments, **options):  # counts the results that came back as finished Ray tasks
    global through_ray
    addresses.update(node["NodeManagerAddress"] for node in ray.nodes())
    ready, rest = wait(*arguments, **options)
    through_ray += len(ready)
    return ready, rest

ray.wait = counting_wait
code = main(sys.argv[1:])
print(f"results of Ray tasks: {through_ray}; node addresses: {sorted(addresses)}")
sys.exit(code)
"""

_STAMPS = {"seconds", "seconds_to_target", "optimizer_seconds", "optimizer_seconds_per_step"}
"""Wall-clock fields: the only stored values that may differ between two executions of one run."""


def _without_stamps(item):
    return dataclasses.replace(item, **{name: None for name in _STAMPS if hasattr(item, name)})


def _stored_results(folder):
    """Everything the store holds about the comparison, wall-clock fields blanked."""
    with RunStore(folder) as store:
        runs = store.runs(purpose=None)
        return {
            "comparisons": store.comparisons(),
            # keyed by id: rows of one configuration and seed are stored in the order runs finish
            "runs": {run["run_id"]: {**run, "summary": _without_stamps(run["summary"])} for run in runs},
            "records": {run["run_id"]: [*map(_without_stamps, store.records(run["run_id"]))] for run in runs},
            "instruments": {run["run_id"]: store.instruments(run["run_id"]) for run in runs},
        }


def test_a_local_ray_comparison_stores_the_same_results_as_two_processes(tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional extra descentlab[ray]; make test installs it")
    compare = ["compare", "--optimizers", "SGD,Adam", "--problems", "bowl,noisy-bowl", "--seeds", "0,1"]
    compare += ["--steps", "30", "--name", "small", "--jobs", "2"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [*compare, "--executor", "ray", "--out", str(tmp_path / "ray")]
    process = subprocess.run(
        [sys.executable, "-c", _RAY_COMPARE_SCRIPT, *command],
        env=environment,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert process.returncode == 0, process.stderr.decode(errors="replace")[-3000:]
    assert main([*compare, "--out", str(tmp_path / "processes")]) == 0
    on_ray, on_processes = _stored_results(tmp_path / "ray"), _stored_results(tmp_path / "processes")
    purposes = [run["purpose"] for run in on_ray["runs"].values()]
    assert purposes.count("compare") == 2 * 2 * 2 and purposes.count("sweep") >= 2 * 2 * 8
    # every run was a Ray task, on a local instance that listens on the loopback interface only
    assert f"results of Ray tasks: {len(purposes)}; node addresses: ['127.0.0.1']" in process.stdout.decode()
    assert on_ray == on_processes
