"""Prodigy in the lab: trained through the CLI, listed with its paper, its search space builds."""

import contextlib
import io

from descentlab.cli import main
from descentlab.lab import RunStore
from descentlab.lab.tuning import TuneOptions, check_space, resolve_space
from descentlab.optim import Prodigy


def _cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_run_trains_prodigy_from_the_command_line(tmp_path):
    for problem, setting in (("tiny-bowl", "d_coef=0.5"), ("tiny-logreg", "variant=paper")):
        argv = ["run", "--problem", problem, "--optimizer", "Prodigy", "--set", setting, "--steps", "40"]
        code, out, err = _cli([*argv, "--out", str(tmp_path)])
        assert code == 0, err
        assert "completed after 40 steps" in out
    with RunStore(tmp_path) as store:
        runs = store.runs(purpose="run")
        records = [store.records(run["run_id"]) for run in runs]
    assert [run["spec"].hyperparameter_dict for run in runs] == [{"d_coef": 0.5}, {}]
    assert [run["spec"].variant for run in runs] == [None, "paper"]
    # d grew from d0 = 1e-6, so the runs went somewhere: the last loss is below the first.
    losses = [[record.loss for record in run if record.loss is not None] for run in records]
    assert all(loss[-1] < 0.9 * loss[0] for loss in losses)


def test_descentlab_optimizers_lists_prodigy_with_its_paper_and_forms():
    code, out, _ = _cli(["optimizers"])
    assert code == 0
    line = next(line for line in out.splitlines() if line.split()[:1] == ["Prodigy"])
    assert "Mishchenko & Defazio 2024" in line and "authors, paper" in line


def test_declared_search_space_builds_at_every_corner():
    space = resolve_space(Prodigy, TuneOptions(ruleset="small"), {})
    assert {dimension.name for dimension in space} >= {"d_coef", "betas[1]"}
    check_space(Prodigy, space)
