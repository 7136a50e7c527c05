import argparse
import json

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
    assert "completed after 12 steps" in capsys.readouterr().out
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
            "--hp takes NAME=VALUE",
        ),
        (["compare", "--seeds", "0,x"], "--seeds must be comma-separated whole numbers"),
        (["compare", "--optimizers", "adam", "--problems", "nope"], "Known problems:"),
        (["compare", "--steps", "3", "--epochs", "1"], "give --steps or --epochs, not both"),
        (["report", "/nonexistent/folder"], "holds no results"),
    ],
)
def test_bad_input_gives_a_clear_message(argv, message, tmp_path):
    if argv[0] != "report":
        argv = [*argv, "--out", str(tmp_path)]
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        run_cli(argv)


@pytest.mark.parametrize(
    "argv", [["compare", "--bogus"], ["run", "--steps", "0"], ["compare", "--jobs", "x"]]
)
def test_argparse_rejects_unknown_options_and_bad_numbers(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        run_cli(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "unrecognized arguments: --bogus" in error or "expected a whole number" in error


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_config_file_fills_options_and_command_line_wins(tmp_path, suffix, capsys):
    out = tmp_path / "from-config"
    if suffix == ".toml":
        text = (
            f'optimizers = ["sgd", "adam"]\nproblems = "tiny-bowl"\nseeds = [0]\nsteps = 6\nout = "{out}"\n'
        )
    else:
        text = f"optimizers: [sgd, adam]\nproblems: tiny-bowl\nseeds: [0]\nsteps: 6\nout: {out}\n"
    config = tmp_path / f"lab{suffix}"
    config.write_text(text)
    assert run_cli(["compare", "--config", str(config), "--optimizers", "adam"]) == 0
    with RunStore(out) as store:
        runs = store.runs()
    assert [(run["optimizer"], run["summary"]["steps"]) for run in runs] == [("adam", 6)]
    document = json.loads((out / "report.json").read_text())
    assert document["comparison"]["optimizers"] == ["adam"]


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
