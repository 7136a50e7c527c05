"""Lookahead, SAM and WeightAveraging in the lab: through the CLI, counted, and evaluated where they say."""

import contextlib
import io

import pytest

from descentlab.cli import main
from descentlab.lab import RunStore, run_spec
from descentlab.lab.fields import SettingError
from descentlab.lab.spec import RunSpec
from descentlab.lab.tuning import TuneOptions, check_space, resolve_space
from descentlab.optim import SAM, Lookahead, WeightAveraging


def _cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()) as out:
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_compare_and_run_train_the_wrappers_from_the_command_line(tmp_path):
    argv = ["compare", "--optimizers", "Lookahead,SAM,WeightAveraging", "--problems", "tiny-bowl"]
    argv += [
        "--seeds",
        "0",
        "--jobs",
        "1",
        "--no-sweep",
        "--steps",
        "8",
        "--lr",
        "0.1",
        "--out",
        str(tmp_path),
    ]
    argv += ["--set", "Lookahead.base=adam", "--set", "Lookahead.lookahead_k=3", "--set", "SAM.momentum=0.9"]
    argv += ["--set", "WeightAveraging.average=swa"]
    code, _, err = _cli(argv)
    assert code == 0, err
    run = [
        "run",
        "--problem",
        "tiny-bowl",
        "--optimizer",
        "SAM",
        "--set",
        "base=adam",
        "--set",
        "sam_variant=asam",
    ]
    code, out, err = _cli([*run, "--lr", "0.1", "--steps", "5", "--out", str(tmp_path)])
    assert code == 0, err
    assert "completed after 5 steps" in out
    with RunStore(tmp_path) as store:
        runs = store.runs() + store.runs(purpose="run")
    assert len(runs) == 4 and all(run["outcome"] == "completed" for run in runs)
    lookahead = next(run for run in runs if run["optimizer"] == "lookahead")
    assert lookahead["spec"].hyperparameter_dict == {"lr": 0.1, "base": "adam", "lookahead_k": 3}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("momentun=0.9", "unexpected keyword argument 'momentun' (the base optimizer of Lookahead)"),
        ("lookahead_k=0", "lookahead_k must be an integer >= 1, got 0"),
        ("base=lbfgs", "base='lbfgs': unknown optimizer"),
    ],
)
def test_bad_wrapper_settings_are_one_line_errors(tmp_path, setting, message):
    argv = [
        "run",
        "--problem",
        "tiny-bowl",
        "--optimizer",
        "Lookahead",
        "--set",
        setting,
        "--out",
        str(tmp_path),
    ]
    code, _, err = _cli(argv)
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_sam_counts_two_gradient_evaluations_per_step():
    result = run_spec(RunSpec.create("tiny-logreg", "sam", {"lr": 0.1, "sam_rho": 0.05}, steps=6))
    assert result.outcome == "completed" and result.summary.protocol == "closure"
    assert result.summary.gradient_evaluations == 2 * 6 and result.summary.loss_evaluations == 2 * 6


@pytest.mark.parametrize(
    ("optimizer", "frozen"),
    [("weightaveraging", {"ema_decay": 1.0}), ("lookahead", {"lookahead_alpha": 0.0, "lookahead_k": 2})],
)
def test_the_lab_evaluates_at_the_average_and_at_the_slow_weights(optimizer, frozen):
    # With these settings the average (resp. the slow weights) never leaves the start, while the live
    # weights train: every evaluation must then see the starting point, and training must still move.
    result = run_spec(RunSpec.create("tiny-logreg", optimizer, {"lr": 0.5, **frozen}, steps=9))
    start, *rest = [record.metrics["loss"] for record in result.records if record.metrics]
    assert rest and all(value == start for value in rest)
    assert result.records[-1].loss < result.records[1].loss


@pytest.mark.parametrize("cls", [Lookahead, SAM, WeightAveraging], ids=lambda c: c.__name__)
def test_declared_search_space_and_a_base_hyperparameter_override_build_at_every_corner(cls):
    options = TuneOptions(ruleset="small", space={f"{cls.__name__}.momentum": "0.5:0.9"})
    space = resolve_space(cls, options, {})
    assert {d.name for d in cls.search_space} | {"momentum"} == {d.name for d in space}
    check_space(cls, space)  # builds the wrapper and its SGD base at each end of each dimension
    with pytest.raises(SettingError, match="momentum must be"):
        check_space(cls, resolve_space(cls, TuneOptions(space={"momentum": "-2:-1"}), {}))


def test_descentlab_optimizers_lists_the_wrappers_with_their_papers_and_forms():
    code, out, _ = _cli(["optimizers"])
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "Zhang et al. 2019" in lines["Lookahead"] and "paper, timm, torch-optimizer" in lines["Lookahead"]
    assert "Foret et al. 2021" in lines["SAM"] and "Kwon et al. 2021" in lines["SAM"]
    assert "Izmailov et al. 2018" in lines["WeightAveraging"] and "ema, swa" in lines["WeightAveraging"]
