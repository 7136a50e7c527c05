"""Adafactor in the lab: both forms train through the CLI, and `descentlab optimizers` lists its paper."""

import contextlib
import io

from descentlab.cli import main
from descentlab.lab import RunStore


def _cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_compare_and_run_train_adafactor_from_the_command_line(tmp_path):
    argv = ["compare", "--optimizers", "Adafactor", "--problems", "tiny-bowl,tiny-logreg", "--seeds", "0"]
    argv += ["--jobs", "1", "--no-sweep", "--steps", "8", "--out", str(tmp_path)]
    code, _, err = _cli(argv)
    assert code == 0, err
    run = ["run", "--problem", "tiny-logreg", "--optimizer", "Adafactor", "--set", "variant=paper"]
    code, out, err = _cli([*run, "--set", "beta1=0.9", "--steps", "5", "--out", str(tmp_path)])
    assert code == 0, err
    assert "completed after 5 steps" in out
    with RunStore(tmp_path) as store:
        runs = store.runs() + store.runs(purpose="run")
    assert len(runs) == 3 and all(run["outcome"] == "completed" for run in runs)
    bowl = next(run for run in runs if run["problem"] == "tiny-bowl")  # deterministic: it must descend
    assert bowl["summary"].final_loss < bowl["summary"].initial_loss
    paper = next(run for run in runs if run["spec"].variant == "paper")
    assert paper["spec"].hyperparameter_dict == {"beta1": 0.9}


def test_descentlab_optimizers_lists_adafactor_with_its_paper_and_forms():
    code, out, _ = _cli(["optimizers"])
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("Adafactor "))
    assert "Shazeer & Stern 2018" in line and "torch, paper" in line
