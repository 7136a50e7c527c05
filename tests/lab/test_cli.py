import argparse
import re

import pytest

from descentlab._cli import lab as lab_cli
from descentlab._cli.lab import DEFAULT_OPTIMIZERS
from descentlab.lab import RunStore


def run_cli(argv):
    """Parse with a parser holding only the lab commands, then call the handler like cli.main does."""
    parser = argparse.ArgumentParser(prog="descentlab")
    lab_cli.register(parser.add_subparsers(dest="command"))
    if argv[0] == "compare" and "--jobs" not in argv:
        argv = [*argv, "--jobs", "1"]  # worker processes would not have the tiny test problems
    args = parser.parse_args(argv)
    return args.handler(args)


def test_problems_lists_the_registry(capsys):
    assert run_cli(["problems"]) == 0
    output = capsys.readouterr().out
    assert "tiny-bowl" in output and "tiny-logreg" in output and "accuracy" in output


def test_compare_then_report(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = [
        "compare",
        "--optimizers",
        "sgd,Adam",
        "--problems",
        "tiny-bowl,tiny-logreg",
        "--seeds",
        "0,1",
        "--out",
        str(out),
    ]
    assert run_cli(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str((out / "report.html").resolve())
    assert "8 runs trained, 0 already stored" in captured.err
    assert run_cli(argv) == 0
    assert "0 runs trained, 8 already stored" in capsys.readouterr().err
    (out / "report.html").unlink()
    assert run_cli(["report", str(out)]) == 0
    assert (out / "report.html").is_file()


def test_compare_with_no_arguments_uses_default_optimizers_and_problems(tmp_path, monkeypatch, capsys):
    from descentlab.problems import registry

    tiny_only = {name: problem for name, problem in registry._PROBLEMS.items() if name.startswith("tiny-")}
    monkeypatch.setattr(registry, "_PROBLEMS", tiny_only)  # the real default problems take minutes
    monkeypatch.chdir(tmp_path)
    assert run_cli(["compare", "--seeds", "0", "--no-sweep"]) == 0
    with RunStore(tmp_path / "descentlab-runs") as store:
        runs = store.runs()
    # default-tagged tiny problems x the ten default optimizers of the issue
    assert {(run["problem"], run["optimizer"]) for run in runs} == {
        (problem, optimizer.lower())
        for problem in ("tiny-bowl", "tiny-logreg")
        for optimizer in DEFAULT_OPTIMIZERS
    }


def test_run_stores_one_spec_and_skips_it_the_second_time(tmp_path, capsys):
    argv = [
        "run",
        "--problem",
        "tiny-bowl",
        "--optimizer",
        "SGD",
        "--lr",
        "0.3",
        "--hp",
        "momentum=0.5",
        "--steps",
        "12",
        "--out",
        str(tmp_path),
    ]
    assert run_cli(argv) == 0
    output = capsys.readouterr().out
    assert "completed after 12 steps" in output and "SGD lr=0.3 momentum=0.5 · 12 steps, seed 0" in output
    assert run_cli(argv) == 0
    assert "already stored" in capsys.readouterr().out
    with RunStore(tmp_path) as store:
        (run,) = store.runs(purpose="run")
    assert run["spec"].hyperparameter_dict == {"lr": 0.3, "momentum": 0.5}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--problem", "tiny-bowl", "--optimizer", "sgdd"], "unknown optimizer 'sgdd'"),
        (["run", "--problem", "bowll", "--optimizer", "sgd"], "unknown problem 'bowll'"),
        (["run", "--problem", "tiny-bowl"], "run needs --problem and --optimizer"),
        (
            ["run", "--problem", "tiny-bowl", "--optimizer", "sgd", "--hp", "momentum"],
            "--set takes KEY=VALUE",
        ),
        (["run", "--problem", "tiny-bowl", "--optimizer", "sgd", "--steps", "0"], "steps must be a whole"),
        (
            ["run", "--problem", "tiny-bowl", "--optimizer", "sgd", "--set", "colour=1"],
            "unknown setting 'colour'",
        ),
        (["compare", "--seeds", "0,x"], "--seeds must be a whole number >= 0, got 'x'"),
        (["compare", "--seeds", str(2**63)], "--seeds must be below 2**62"),
        (["compare", "--optimizers", ",,"], "--optimizers is empty"),
        (["compare", "--jobs", "x"], "--jobs must be a whole number >= 1, got 'x'"),
        (["compare", "--optimizers", "adam", "--problems", "nope"], "Known problems:"),
        (["compare", "--steps", "3", "--epochs", "1"], "give steps or epochs, not both"),
        (["compare", "--lr", "0"], "lr must be a finite number > 0"),
        (["compare", "--vary", "lr"], "--vary takes KEY=VALUE"),
        (["compare", "--vary", "lr=0.1", "--set", "lr=1"], "lr is both set and varied"),
        (["compare", "--set", "schedule=cosin"], "schedule must be one of constant"),
        (["compare", "--set", "dropout=0.5", "--problems", "tiny-bowl"], "unknown setting 'dropout'"),
        (["report", "/nonexistent/folder"], "holds no results"),
    ],
)
def test_bad_input_gives_a_clear_message(argv, message, tmp_path):
    if argv[0] != "report":
        argv = [*argv, "--out", str(tmp_path)]
    with pytest.raises(ValueError, match=re.escape(message)):
        run_cli(argv)


def test_argparse_rejects_unknown_options(capsys):
    with pytest.raises(SystemExit) as stopped:
        run_cli(["compare", "--bogus"])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_config_file_fills_options_and_command_line_wins(tmp_path, suffix, capsys):
    out = tmp_path / "from-config"
    if suffix == ".toml":
        text = (
            f'optimizers = ["sgd", "adam"]\nproblems = "tiny-bowl"\nseeds = [0]\nsteps = 6\nout = "{out}"\n'
            '[set]\nlr = 0.1\n"SGD.momentum" = 0.5\n[vary]\nschedule = ["constant", "cosine"]\n'
        )
    else:
        text = (
            f"optimizers: [sgd, adam]\nproblems: tiny-bowl\nseeds: [0]\nsteps: 6\nout: {out}\n"
            "set: {lr: 0.1, SGD.momentum: 0.5}\nvary: {schedule: [constant, cosine]}\n"
        )
    config = tmp_path / f"lab{suffix}"
    config.write_text(text)
    assert run_cli(["compare", "--config", str(config), "--optimizers", "adam"]) == 0
    with RunStore(out) as store:
        runs = store.runs()
    assert sorted(
        (run["optimizer"], run["summary"].steps, run["spec"].schedule_dict["name"]) for run in runs
    ) == [
        ("adam", 6, "constant"),
        ("adam", 6, "cosine"),
    ]
    assert all(run["spec"].hyperparameter_dict == {"lr": 0.1} for run in runs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps = true\n", "steps must be a whole number >= 1, got True"),
        ("no_sweep = 'maybe'\n", "no_sweep must be true or false, got 'maybe'"),
        ("[set]\nlr = 0\n", "lr must be a finite number > 0, got 0.0"),
        ("seeds = [0, -1]\n", "--seeds must be a whole number >= 0, got -1"),
    ],
)
def test_config_values_go_through_the_same_checks_as_flags(tmp_path, text, message):
    config = tmp_path / "lab.toml"
    config.write_text("problems = 'tiny-bowl'\n" + text)
    with pytest.raises(ValueError, match=re.escape(message)):
        run_cli(["compare", "--config", str(config), "--out", str(tmp_path / "out")])


def test_no_sweep_false_in_a_config_keeps_the_sweep(tmp_path):
    config = tmp_path / "lab.toml"
    config.write_text("optimizers = 'sgd'\nproblems = 'tiny-bowl'\nseeds = [0]\nno_sweep = 'false'\n")
    assert run_cli(["compare", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    with RunStore(tmp_path / "out") as store:
        assert len(store.runs("sweep")) > 0


def test_unwritable_or_file_outputs_fail_before_any_work(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        run_cli(["run", "--problem", "tiny-bowl", "--optimizer", "sgd", "--out", str(target)])
    # /sys refuses new folders even to root, so this holds whoever runs the tests
    with pytest.raises(
        ValueError, match=r"cannot write to --out '/sys/descentlab-runs' \(Operation not permitted\)"
    ):
        run_cli(["compare", "--problems", "tiny-bowl", "--out", "/sys/descentlab-runs"])


def test_config_file_errors_name_the_problem(tmp_path):
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text("optimisers = ['sgd']\n")
    with pytest.raises(ValueError, match=r"unknown option 'optimisers'.*allowed: .*optimizers"):
        run_cli(["compare", "--config", str(bad_key)])
    broken = tmp_path / "broken.yaml"
    broken.write_text("optimizers: [sgd\n")
    with pytest.raises(ValueError, match="is not valid YAML"):
        run_cli(["compare", "--config", str(broken)])
    other = tmp_path / "lab.ini"
    other.write_text("")
    with pytest.raises(ValueError, match=r"must end in \.toml, \.yaml or \.yml"):
        run_cli(["compare", "--config", str(other)])


def test_main_prints_value_errors_cleanly(monkeypatch, capsys):
    import descentlab.cli as cli

    assert cli.main(["run", "--problem", "tiny-bowl", "--optimizer", "nadamm"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("descentlab: error: unknown optimizer 'nadamm'") and "Traceback" not in error


def test_a_closed_pipe_ends_quietly():
    import subprocess
    import sys

    command = f"'{sys.executable}' -m descentlab problems | head -n 1"
    finished = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120, check=False)
    assert finished.stdout.startswith("problem") and finished.stderr == ""


def test_compare_runs_muon_on_a_vector_and_a_matrix_problem(tmp_path, capsys):
    """Muon in the lab: tiny-bowl's point takes its AdamW fallback, tiny-logreg's weights its matrix step."""
    argv = ["compare", "--optimizers", "muon", "--problems", "tiny-bowl,tiny-logreg", "--seeds", "0"]
    assert run_cli([*argv, "--out", str(tmp_path)]) == 0
    assert "2 runs trained, 0 already stored, 0 diverged" in capsys.readouterr().err
    with RunStore(tmp_path) as store:
        assert {run["optimizer"] for run in store.runs()} == {"muon"}
