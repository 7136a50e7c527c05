"""random-search: the drawn trials against Optuna's own study, the best against the stored scores, the axes.

The figure is made with 8 trials of 100 steps (its own are 30 of 600); Optuna's study is read back
from ``studies.sqlite`` with Optuna's API, independently of the lab's store.
"""

import math
from dataclasses import replace
from functools import partial

import numpy as np
import optuna
import pytest
from matplotlib.collections import PathCollection
from optuna.trial import TrialState

from descentlab.cli import main
from descentlab.figures import get_figure, make_figure
from descentlab.figures.random_search import LR, WEIGHT_DECAY, random_search_trials
from descentlab.lab.store import RunStore
from descentlab.lab.tuning import PURPOSE, default_storage_url
from figures.drawn import drawn_line

TRIALS = 8
STEPS = 100


def definition():
    train = partial(random_search_trials, trials=TRIALS, steps=STEPS)
    return replace(get_figure("random-search"), train=train)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    folder = tmp_path_factory.mktemp("random-search")
    return make_figure(definition(), folder), folder


@pytest.fixture(scope="module")
def study(made):
    _, folder = made
    storage = default_storage_url(folder)
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def search_axes(figure):
    (axes,) = [a for a in figure.axes if a.get_title().endswith("random trials over the search space")]
    return axes


def trials_scatter(axes):
    (dots,) = [c for c in axes.collections if isinstance(c, PathCollection) and c.get_label() == "trials"]
    return dots


def test_every_trial_is_drawn_where_optuna_sampled_it_coloured_by_its_value(made, study):
    result, _ = made
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == TRIALS and result.trained == TRIALS
    finite = [t for t in trials if math.isfinite(t.value)]
    dots = trials_scatter(search_axes(result.figure))
    drawn = sorted(zip(map(tuple, np.asarray(dots.get_offsets())), np.asarray(dots.get_array())))
    expected = sorted(((t.params["lr"], t.params["weight_decay"]), t.value) for t in finite)
    assert len(drawn) == len(expected)
    for (point, value), (expected_point, expected_value) in zip(drawn, expected):
        # the lab rounds a draw to 4 significant digits before it trains it (search_space.SIGNIFICANT_DIGITS)
        np.testing.assert_allclose(point, expected_point, rtol=1e-3)
        assert value == expected_value
    diverged = [t for t in trials if not math.isfinite(t.value)]
    if diverged:
        assert len(drawn_line(search_axes(result.figure), "diverged")) == len(diverged)


def test_the_marked_best_is_optunas_best_trial_and_the_argmax_of_the_stored_scores(made, study):
    result, folder = made
    axes = search_axes(result.figure)
    (marker,) = [line for line in axes.lines if line.get_label().startswith("best: ")]
    best_label = marker.get_label().removeprefix("best: ")
    assert best_label == f"trial {study.best_trial.number}"
    with RunStore(folder, read_only=True) as store:
        runs = store.runs(PURPOSE)
        assert store.runs() == [], "the figure runs the study alone, no re-runs of the best as a comparison"
    scores = {run["run_id"]: run["summary"].final_metric for run in runs if run["outcome"] == "completed"}
    assert len(runs) == TRIALS
    best_run = study.best_trial.user_attrs["run_id"]
    assert scores[best_run] == max(scores.values()) == study.best_value
    (best_spec,) = [run["spec"] for run in runs if run["run_id"] == best_run]
    hyperparameters = best_spec.hyperparameter_dict
    expected = [hyperparameters["lr"], hyperparameters["weight_decay"]]
    np.testing.assert_allclose(marker.get_xydata()[0], expected)


def test_axes_are_log_scaled_over_the_search_space(made):
    result, _ = made
    axes = search_axes(result.figure)
    assert axes.get_xscale() == axes.get_yscale() == "log"
    for (low, high), dimension in ((axes.get_xlim(), LR), (axes.get_ylim(), WEIGHT_DECAY)):
        # the range, padded a little so that trials on its ends are drawn whole
        assert dimension.low / 2 < low < dimension.low and dimension.high < high < 2 * dimension.high
    box = drawn_line(axes, "search space")
    np.testing.assert_allclose(box.min(axis=0), [LR.low, WEIGHT_DECAY.low])
    np.testing.assert_allclose(box.max(axis=0), [LR.high, WEIGHT_DECAY.high])
    points = np.asarray(trials_scatter(axes).get_offsets())
    assert (points >= [LR.low, WEIGHT_DECAY.low]).all() and (points <= [LR.high, WEIGHT_DECAY.high]).all()
    # log-uniform draws spread over decades, not crowd the upper end as uniform ones would
    assert np.median(np.log10(points[:, 0])) < math.log10(LR.high) - 1


def test_a_second_call_trains_nothing_and_returns_the_same_trials(made, study):
    result, folder = made
    specs, trained = random_search_trials(folder, trials=TRIALS, steps=STEPS)
    assert trained == 0 and result.skipped == 0
    ids = {trial.user_attrs["run_id"] for trial in study.get_trials(states=(TrialState.COMPLETE,))}
    assert {spec.run_id for spec in specs.values()} == ids
    assert all(spec.steps == STEPS and spec.problem == "digits-mlp" for spec in specs.values())


def test_descentlab_tune_resumes_the_figures_study_and_trains_nothing(made, study, capsys):
    _, folder = made
    space = [f"--space={d.name}={d.describe()}" for d in (LR, WEIGHT_DECAY)]
    arguments = ["tune", "--optimizers=sgd", "--problems=digits-mlp", "--seeds=0", "--ruleset=lr-only"]
    arguments += [f"--trials={TRIALS}", f"--steps={STEPS}", *space, "--worker", f"--out={folder}"]
    assert main(arguments) == 0
    output = capsys.readouterr()
    assert "0 trials trained" in output.out + output.err
    assert len(optuna.get_all_study_names(default_storage_url(folder))) == 1
