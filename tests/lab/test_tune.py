import math
import os
import signal
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from descentlab.cli import main
from descentlab.lab import RunStore
from descentlab.lab import tuning as tuning_module
from descentlab.lab.report.data import load_report_data
from descentlab.lab.report.page import render_page
from descentlab.lab.tuning import (
    PURPOSE,
    IndexedRandomSampler,
    TuneOptions,
    default_storage_url,
    resolve_space,
    run_tuning,
)
from descentlab.optim import SGD, Adam, Momentum
from descentlab.optim.search_space import Float, sample, to_hyperparameters

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _draws(space, count, seed=0):
    study = optuna.create_study(sampler=IndexedRandomSampler(seed))
    draws = []
    for _ in range(count):
        trial = study.ask()
        draws.append(sample(space, trial))
        study.tell(trial, 0.0)
    return draws


def test_sampling_respects_ranges_log_scales_and_conditions():
    draws = _draws(SGD.search_space, 400)
    rates = [d["lr"] for d in draws]
    assert all(1e-4 <= lr <= 10 for lr in rates)
    # log-uniform over 5 decades: 2 of them lie below 1e-2 (a linear scale would put 0.1 % there)
    assert 0.32 < sum(lr < 1e-2 for lr in rates) / len(rates) < 0.48
    with_momentum = [d for d in draws if "momentum" in d]
    assert 0.4 < len(with_momentum) / len(draws) < 0.6  # optional: used about half the time
    assert all(("nesterov" in d) == ("momentum" in d) for d in draws)  # nesterov only with momentum
    momenta = [d["momentum"] for d in with_momentum]
    assert all(0.5 <= m <= 0.999 for m in momenta)
    # log1m: 1 - momentum is log-uniform on [1e-3, 0.5], so P(momentum > 0.99) = ln 10 / ln 500
    share = sum(m > 0.99 for m in momenta) / len(momenta)
    assert abs(share - math.log(10) / math.log(500)) < 0.1


def test_tuple_elements_keep_their_defaults_and_random_search_is_reproducible():
    assert to_hyperparameters({"betas[1]": 0.99, "lr": 0.1}, Adam) == {"betas": (0.9, 0.99), "lr": 0.1}
    assert _draws(Adam.search_space, 5, seed=3) == _draws(Adam.search_space, 5, seed=3)
    assert _draws(Adam.search_space, 5, seed=3) != _draws(Adam.search_space, 5, seed=4)
    # a failed trial does not shift the draws of the next ones: they depend on the index of live trials
    study = optuna.create_study(sampler=IndexedRandomSampler(3))
    study.tell(study.ask(), state=TrialState.FAIL)
    trial = study.ask()
    assert sample(Adam.search_space, trial) == _draws(Adam.search_space, 1, seed=3)[0]


def _tune(folder, trials=4, **options):
    return run_tuning(
        folder, ["SGD", "adam"], ["tiny-logreg"], [0, 1], options=TuneOptions(trials=trials, **options)
    )


def _study(folder, tuned):
    return optuna.load_study(study_name=tuned.study_name, storage=default_storage_url(folder))


def test_a_tune_run_finishes_and_running_it_again_trains_nothing(tmp_path):
    first = _tune(tmp_path)
    assert first.trials_trained == 8 and [c.ran for c in first.comparisons] == [4]
    for tuned in first.tuned:
        assert (tuned.complete, tuned.pruned) == (4, 0)
        assert len(_study(tmp_path, tuned).trials) == 4
    again = _tune(tmp_path)
    assert again.trials_trained == 0 and [(c.ran, c.skipped) for c in again.comparisons] == [(0, 4)]
    assert [t.best for t in again.tuned] == [t.best for t in first.tuned]
    with RunStore(tmp_path) as store:
        assert len(store.runs(PURPOSE)) == 8


def test_the_best_trial_reruns_on_every_seed_and_the_report_shows_it_with_its_cost(tmp_path):
    summary = _tune(tmp_path)
    with RunStore(tmp_path) as store:
        trials = store.runs(PURPOSE)
        compared = store.runs("compare")
    for tuned in summary.tuned:
        mine = [run for run in trials if run["optimizer"] == tuned.configuration.optimizer]
        best = max(run["summary"].final_metric for run in mine)  # accuracy: higher is better
        assert tuned.best_value == best
        reruns = [run for run in compared if run["optimizer"] == tuned.configuration.optimizer]
        assert sorted(run["seed"] for run in reruns) == [0, 1]
        for run in reruns:
            assert run["spec"].hyperparameter_dict == tuned.best
    (section,) = load_report_data(tmp_path).sections
    (problem,) = section.problems
    assert {c.optimizer for c in problem.configurations} == {"sgd", "adam"}
    assert all(c.tuning["trials"] == 4 and c.tuning["cost"] == 4 * 30 for c in problem.configurations)
    page = render_page(tmp_path)[0]
    assert "tuning cost" in page and "4 × 30 steps = 120" in page and "tuned with ruleset small" in page


class _PruneOddTrials(optuna.pruners.BasePruner):
    """Prunes every odd-numbered trial at its first report: a pruner whose choices a test knows."""

    def prune(self, study, trial):
        return trial.number % 2 == 1


def test_pruned_trials_are_stored_as_pruned_and_never_counted_as_finished(tmp_path, monkeypatch):
    monkeypatch.setattr(tuning_module, "_pruner", lambda options: _PruneOddTrials())
    summary = run_tuning(tmp_path, ["adam"], ["tiny-logreg"], [0], options=TuneOptions(trials=4))
    (tuned,) = summary.tuned
    assert (tuned.complete, tuned.pruned) == (2, 2)
    study = _study(tmp_path, tuned)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED] * 2
    with RunStore(tmp_path) as store:
        stored = {run["run_id"] for run in store.runs(PURPOSE)}
    complete = {t.user_attrs["run_id"] for t in study.trials if t.state == TrialState.COMPLETE}
    assert stored == complete  # a pruned trial is no stored run: a later study would train it fully
    pruned_steps = [t.user_attrs["steps"] for t in study.trials if t.state == TrialState.PRUNED]
    assert all(0 < steps < 30 for steps in pruned_steps)
    assert tuned.steps_trained == 2 * 30 + sum(pruned_steps)
    assert study.best_trial.state == TrialState.COMPLETE


_KILLED_SCRIPT = """
import os, signal, sys
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
from lab.tiny_problems import register_tiny_problems
register_tiny_problems()
from descentlab.lab import tuning
from descentlab.lab.runner import run_spec
done = []

def runner(spec, on_evaluation=None):
    if len(done) == 2:  # the process dies the hard way while the third trial trains
        os.kill(os.getpid(), signal.SIGKILL)
    done.append(spec)
    return run_spec(spec, on_evaluation)

tuning.run_spec = runner
tuning.run_tuning(sys.argv[1], ["sgd"], ["tiny-logreg"], [0], options=tuning.TuneOptions(trials=5))
"""


def test_a_killed_tune_resumes_and_ends_with_exactly_the_trials_asked_for(tmp_path):
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.run(
        [sys.executable, "-c", _KILLED_SCRIPT, str(tmp_path)], env=environment, timeout=120, check=False
    )
    assert process.returncode == -signal.SIGKILL
    summary = run_tuning(tmp_path, ["sgd"], ["tiny-logreg"], [0], options=TuneOptions(trials=5))
    (tuned,) = summary.tuned
    assert summary.trials_trained == 3 and (tuned.complete, tuned.pruned) == (5, 0)
    trials = _study(tmp_path, tuned).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 5
    (killed,) = [t for t in trials if t.state == TrialState.FAIL]
    (retry,) = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert retry.params == killed.params and retry.state == TrialState.COMPLETE


def test_space_overrides_apply_per_optimizer_and_settings_fix_keys():
    options = TuneOptions(space={"lr": "1e-3:1e-1:log", "Adam.eps": "1e-10:1e-2:log", "Adam.lr": "1e-4:1e-2"})
    assert resolve_space(Momentum, options, {})[0] == Float("lr", 1e-3, 1e-1, "log")
    adam = {d.name: d for d in resolve_space(Adam, options, {})}
    assert adam["eps"] == Float("eps", 1e-10, 1e-2, "log")
    assert adam["lr"] == Float("lr", 1e-4, 1e-2, "log")  # the qualified key wins; the scale is kept
    assert "eps" not in {d.name for d in resolve_space(Adam, options, {"eps": 1e-8})}
    assert [d.name for d in resolve_space(Adam, TuneOptions(ruleset="lr-only"), {})] == ["lr"]
    assert resolve_space(Adam, TuneOptions(ruleset="defaults"), {}) == ()


def test_space_override_from_the_command_line_reaches_the_trials(tmp_path):
    arguments = ["tune", "--optimizers", "Adam", "--problems", "tiny-logreg", "--trials", "3", "--seeds", "0"]
    assert main([*arguments, "--space", "Adam.eps=1e-3:1e-2:log", "--jobs", "1", "--out", str(tmp_path)]) == 0
    with RunStore(tmp_path) as store:
        trials = store.runs(PURPOSE)
    assert len(trials) == 3 and all(1e-3 <= r["spec"].hyperparameter_dict["eps"] <= 1e-2 for r in trials)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("Adam.eps=abc", "--space Adam.eps: 'abc' is neither LOW:HIGH[:SCALE] nor A|B"),
        ("Adam.foo=1:2", "--space Adam.foo: Adam has no hyperparameter 'foo'"),
        ("Adma.eps=1:2", "--space Adma.eps: unknown optimizer 'Adma'"),
        ("Adam.eps=0:1:log", "--space Adam.eps: eps: a log scale needs low > 0"),
        ("Adam.betas[2]=0:0.5", "--space Adam.betas[2]: Adam.betas has no element 2"),
        ("Adam.betas[0]=0:1:linear", "--space Adam.betas[0]=1.0: betas[0] must be in"),
    ],
)
def test_bad_space_input_is_a_one_line_error_naming_the_key(tmp_path, capsys, space, message):
    arguments = ["tune", "--optimizers", "Adam", "--problems", "tiny-logreg", "--trials", "2"]
    assert main([*arguments, "--space", space, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
