"""Live logging (``--log tensorboard,csv``): the files written while runs train hold what the store holds.

The store is the reference: each test reads the event files back with TensorBoard's own reader and the
CSV with the csv module, and compares them, step by step, with ``RunStore.records``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

from descentlab import cli
from descentlab.lab import RunStore, live_log, run_comparison
from descentlab.lab.live_log import LiveLogRunner, parse_log, run_name
from descentlab.lab.records import SCALAR_COLUMNS, StepRecord
from lab.test_cli import run_cli

TAGS = ("loss", "lr", "grad_norm", "update_norm")


def read_events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in a run's event files, ``{tag: [(step, value), ...]}`` (no sampling)."""
    accumulator = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def expected_events(records: list[StepRecord]) -> dict[str, list[tuple[int, float]]]:
    """The scalars the store's records call for, rounded to float32 as TensorBoard keeps them."""
    expected: dict[str, list[tuple[int, float]]] = {}

    def add(tag: str, step: int, value: float | None) -> None:
        if value is not None:
            expected.setdefault(tag, []).append((step, float(np.float32(value))))

    for record in records:
        for tag in TAGS:
            add(tag, record.step, getattr(record, tag))
        for prefix, metrics in (("validation", record.metrics), ("train_subset", record.train_metrics)):
            for key, value in (metrics or {}).items():
                add(f"{prefix}/{key}", record.step, value)
    return expected


def read_csv(path: Path) -> list[StepRecord]:
    """A live CSV parsed back into step records (empty cells are missing values)."""
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    records = []
    for row in rows:
        values = {name: float(text) for name, text in row.items() if text != ""}
        metrics = {
            prefix: {name.partition("/")[2]: v for name, v in values.items() if name.startswith(prefix + "/")}
            or None
            for prefix in ("validation", "train_subset")
        }
        scalars = {name: values[name] for name in SCALAR_COLUMNS if name in values}
        for name in ("step", "loss_evaluations", "gradient_evaluations"):
            scalars[name] = int(scalars[name])
        records.append(
            StepRecord(**scalars, metrics=metrics["validation"], train_metrics=metrics["train_subset"])
        )
    return records


def test_compare_with_two_jobs_logs_exactly_the_stored_records(tmp_path, monkeypatch):
    from descentlab.lab import report

    monkeypatch.setattr(report, "write_report", lambda out: Path(out) / "report.html")  # not tested here
    out = tmp_path / "runs"
    # workers load the real registry, where bowl lives: each one writes the files of its own runs
    argv = ["compare", "--optimizers", "sgd,adam", "--problems", "bowl", "--seeds", "0,1", "--steps", "40"]
    argv += ["--lr", "0.1", "--name", "watched", "--out", str(out), "--jobs", "2", "--log", "tensorboard,csv"]
    assert run_cli(argv) == 0
    plain = run_comparison(
        tmp_path / "plain", ["sgd", "adam"], ["bowl"], [0, 1], settings={"steps": 40, "lr": 0.1}
    )
    with RunStore(out) as store:
        runs = store.runs()
        assert sorted(run["run_id"] for run in runs) == sorted(plain.run_ids)  # logging is not part of a run
        for run in runs:
            records, name = store.records(run["run_id"]), run_name(run["spec"])
            assert len(records) == 41
            events = read_events(out / "tensorboard" / "watched" / name)
            assert events == expected_events(records)
            assert [step for step, _ in events["loss"]] == list(range(1, 41))
            assert read_csv(out / "live" / "watched" / f"{name}.csv") == records
    assert not (tmp_path / "plain" / "tensorboard").exists() and not (tmp_path / "plain" / "live").exists()


def test_the_csv_grows_row_by_row_while_the_run_trains(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    seen: list[tuple[StepRecord, list[StepRecord]]] = []
    real_run_spec = live_log.run_spec

    def watching_run_spec(spec, on_record):
        def hook(record):
            on_record(record)
            (path,) = (out / "live" / "tiny-logreg").glob("*.csv")
            seen.append((record, read_csv(path)))  # what a reader sees right after the record is kept

        return real_run_spec(spec, on_record=hook)

    monkeypatch.setattr(live_log, "run_spec", watching_run_spec)
    argv = ["run", "--problem", "tiny-logreg", "--optimizer", "Adam", "--lr", "0.05", "--steps", "30"]
    argv += ["--set", "evaluations=6"]
    assert run_cli([*argv, "--out", str(out), "--log", "csv,tensorboard"]) == 0
    assert run_cli([*argv, "--out", str(tmp_path / "plain")]) == 0
    with RunStore(out) as store, RunStore(tmp_path / "plain") as plain:
        (run,) = store.runs(purpose="run")
        assert [other["run_id"] for other in plain.runs(purpose="run")] == [run["run_id"]]
        stored = store.records(run["run_id"])
    assert len(stored) == 31 and len(seen) == 31
    for count, (record, rows) in enumerate(seen, start=1):
        assert len(rows) == count and rows[-1] == record
    assert seen[-1][1] == stored
    assert sum(record.metrics is not None for record in stored) == 7  # the start and 6 evaluations
    events = read_events(out / "tensorboard" / "tiny-logreg" / run_name(run["spec"]))
    assert events == expected_events(stored) and "validation/accuracy" in events


def test_a_run_trained_again_starts_its_live_files_afresh(tmp_path):
    from descentlab.lab.spec import RunSpec

    spec = RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1}, steps=5)
    with live_log.live_log(tmp_path, ("csv", "tensorboard"), "again", spec) as write:
        write(StepRecord(step=0, lr=0.1))
        write(StepRecord(step=7, loss=99.0, lr=0.1))  # an attempt interrupted before it was stored
    result = LiveLogRunner(str(tmp_path), ("csv", "tensorboard"), "again")(spec)
    name = run_name(spec)
    assert read_csv(tmp_path / "live" / "again" / f"{name}.csv") == result.records
    folder = tmp_path / "tensorboard" / "again" / name
    assert len(list(folder.iterdir())) == 1  # one event file: the old attempt's is gone
    assert read_events(folder) == expected_events(result.records)


def test_parse_log_reads_kinds_in_any_order_and_none():
    assert parse_log("none") == ()
    assert parse_log("tensorboard, CSV") == ("csv", "tensorboard")
    assert parse_log(["csv"]) == ("csv",)
    with pytest.raises(ValueError, match=r"--log must be .*got \('csv', 'html'\)"):
        LiveLogRunner("out", ("csv", "html"), "group")


@pytest.mark.parametrize("value", ["csvv", "none,csv", ","])
def test_a_bad_log_value_is_a_one_line_error_naming_the_flag(tmp_path, capsys, value):
    out = tmp_path / "runs"
    assert cli.main(["compare", "--problems", "tiny-bowl", "--log", value, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and error.startswith("descentlab: error: --log must be none, csv, tensorboard")
    assert repr(value) in error
    assert not out.exists()  # refused before anything was made or trained


def test_log_tensorboard_without_the_package_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails
    out = tmp_path / "runs"
    argv = ["run", "--problem", "tiny-bowl", "--optimizer", "sgd", "--log", "csv,tensorboard"]
    assert cli.main([*argv, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "pip install 'descentlab[tensorboard]'" in error
    assert not out.exists()
