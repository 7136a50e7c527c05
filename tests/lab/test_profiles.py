import json
import math
import re

import numpy as np
import pytest

from descentlab.lab import RunStore, write_report
from descentlab.lab.records import RunSummary, StepRecord
from descentlab.lab.report import curves as curves_module
from descentlab.lab.report import plots as plots_module
from descentlab.lab.report.data import ConfigurationRuns, ProblemRuns, load_report_data
from descentlab.lab.report.profiles import (
    bootstrap_profile,
    group_profiles,
    lower_median,
    performance_profile,
    performance_ratios,
    problem_targets,
    profile_groups,
    profile_score,
    time_to_target,
)
from descentlab.lab.tuning import TuneOptions, run_tuning
from descentlab.problems.base import Problem

INF = math.inf

# 4 problems x 3 solvers (A, B, C); the last problem nobody solves.
COSTS = np.array(
    [
        [10.0, 20.0, 40.0],  # ratios 1, 2, 4
        [30.0, 15.0, INF],  # ratios 2, 1, inf
        [INF, 50.0, 25.0],  # ratios inf, 2, 1
        [INF, INF, INF],  # ratios inf for all
    ]
)


def test_profile_and_score_match_the_hand_computed_step_functions():
    assert performance_ratios(COSTS).tolist() == [[1, 2, 4], [2, 1, INF], [INF, 2, 1], [INF, INF, INF]]
    taus = [1.0, 1.5, 1.999, 2.0, 3.999, 4.0]
    rho = performance_profile(COSTS, taus)
    # A is within tau of the best on problem 1 from tau 1, problem 2 from tau 2
    assert rho[0].tolist() == [0.25, 0.25, 0.25, 0.5, 0.5, 0.5]
    assert rho[1].tolist() == [0.25, 0.25, 0.25, 0.75, 0.75, 0.75]
    assert rho[2].tolist() == [0.25, 0.25, 0.25, 0.25, 0.25, 0.5]
    # area over [1, 4] / 3 = mean over problems of (4 - r)/3: A (3 + 2)/12, B (2 + 3 + 2)/12, C (0 + 3)/12
    assert profile_score(COSTS) == pytest.approx([5 / 12, 7 / 12, 3 / 12], abs=1e-15)
    # the closed form equals the area under the profile (a fine Riemann sum of the step functions)
    grid = np.linspace(1, 4, 30_001)
    area = performance_profile(COSTS, grid).mean(axis=1)
    assert area == pytest.approx([5 / 12, 7 / 12, 3 / 12], abs=1e-3)


def test_a_target_met_at_the_start_and_bad_costs():
    # best cost 0: the solvers at 0 have ratio 1, every other one is infinitely slower
    assert performance_ratios(np.array([[0.0, 0.0, 5.0]])).tolist() == [[1, 1, INF]]
    with pytest.raises(ValueError, match=r"costs must be >= 0 or inf, got -1.0 at index \(1, 0\)"):
        performance_ratios(np.array([[1.0, 2.0], [-1.0, 3.0]]))
    with pytest.raises(ValueError, match=r"taus must be a 1-D ascending sequence, got \[2.0, 1.0\]"):
        performance_profile(COSTS, [2.0, 1.0])
    with pytest.raises(ValueError, match="at least one value"):
        lower_median([])
    assert lower_median([5.0, INF]) == 5.0 and lower_median([INF, 1.0, INF]) == INF


def _records(values, metric="accuracy"):
    """A record every 10 steps, 2 gradient evaluations per step and 0.5 s per step; metrics where given."""
    return [
        StepRecord(
            step=10 * i,
            gradient_evaluations=20 * i,
            seconds=5.0 * i,
            metrics=None if value is None else {metric: value, "other": 0.0},
        )
        for i, value in enumerate(values)
    ]


def test_time_to_target_is_the_first_evaluation_at_or_past_it():
    records = _records([0.1, None, 0.6, 0.9, 0.7, 0.95])
    assert time_to_target(records, "accuracy", 0.6, True) == {
        "steps": 20.0,
        "gradient_evaluations": 40.0,
        "seconds": 10.0,
    }
    assert time_to_target(records, "accuracy", 0.91, True)["steps"] == 50.0
    assert time_to_target(records, "accuracy", 0.96, True) == dict.fromkeys(
        ("steps", "gradient_evaluations", "seconds"), INF
    )
    losses = _records([2.0, 1.0, math.nan, 0.25], metric="loss")
    assert time_to_target(losses, "loss", 0.5, False)["seconds"] == 15.0
    assert time_to_target(losses, "loss", 2.0, False)["steps"] == 0.0


def _problem_runs(finals_by_optimizer, starts):
    problem = Problem(
        name="synthetic",
        summary="",
        kind="learning",
        make_task=None,
        budget_steps=10,
        metric="accuracy",
        higher_is_better=True,
    )
    configurations = []
    start = iter(starts)
    for optimizer, finals in finals_by_optimizer.items():
        runs = [
            {
                "seed": seed,
                "outcome": "diverged" if value is None else "completed",
                "summary": RunSummary(final_metric=value),
                "records": [StepRecord(step=0, metrics={"accuracy": next(start)})],
            }
            for seed, value in enumerate(finals)
        ]
        configurations.append(ConfigurationRuns(optimizer, optimizer, optimizer, runs))
    return ProblemRuns("synthetic", problem, configurations)


def test_targets_are_the_best_lower_median_and_a_tenth_back_to_the_start():
    finals = {"a": [0.9, 0.8, 0.95], "b": [0.92, None, 0.97, 0.5]}
    runs = _problem_runs(finals, [0.1, 0.2, 0.1, 0.3, 0.1, 0.2, 0.4])
    targets = problem_targets(runs, {"a": "A", "b": "B"})
    # a: 2nd best of 3 = 0.9; b: 2nd best of 4 (diverged counts worst) = 0.92; start median 0.2
    assert (targets.strict, targets.set_by, targets.initial) == (0.92, "B", 0.2)
    assert targets.relaxed == pytest.approx(0.92 - 0.1 * (0.92 - 0.2), abs=1e-15)
    everything_diverged = _problem_runs({"a": [None, None]}, [0.1, 0.1])
    assert problem_targets(everything_diverged, {"a": "A"}) is None


def _synthetic_seed_costs(seeds, generator):
    """5 problems x 3 solvers; per-seed costs log-normal around a solver's speed, some seeds unsolved."""
    speeds = np.array([[1.0, 1.3, 2.0], [1.0, 0.8, 3.0], [2.0, 1.0, 1.5], [1.0, 1.1, 1.2], [1.0, 2.5, 0.9]])
    table = []
    for row in speeds:
        costs = []
        for speed in row:
            values = 100 * speed * np.exp(0.3 * generator.standard_normal(seeds))
            values[generator.random(seeds) < 0.1] = INF
            costs.append(values.tolist())
        table.append(costs)
    return table


def test_bootstrap_intervals_hold_the_point_estimate_and_shrink_with_more_seeds():
    generator = np.random.default_rng(7)
    few = bootstrap_profile(_synthetic_seed_costs(4, generator), resamples=2000)
    many = bootstrap_profile(_synthetic_seed_costs(64, generator), resamples=2000)
    for estimate in (few, many):
        assert np.all(estimate.score_low <= estimate.score) and np.all(estimate.score <= estimate.score_high)
        assert np.all(estimate.rho_low <= estimate.rho_high)
        assert estimate.rho.shape == (3, 301) and np.all(np.diff(estimate.rho, axis=1) >= 0)
    assert np.all(many.score_high - many.score_low < 0.6 * (few.score_high - few.score_low))
    # one seed per cell: nothing to resample, the interval is the point
    single = bootstrap_profile(COSTS[:, :, None].tolist(), resamples=50)
    assert np.array_equal(single.score_low, single.score) and np.array_equal(single.score_high, single.score)
    with pytest.raises(ValueError, match="same solvers"):
        bootstrap_profile([[[1.0], [2.0]], [[1.0]]])


def _cells(row_html):
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row_html)]


def _table_rows(page, css_class):
    table = re.search(rf"<table class='{css_class}'>.*?<tbody>(.*?)</tbody>", page).group(1)
    return [_cells(row) for row in re.findall(r"<tr>(.*?)</tr>", table)]


def _expected_steps(folder):
    """Per (problem, optimizer): lower-median steps to the strict target, from the store, by plain loops."""
    higher = {"tiny-logreg": True, "tiny-bowl": False}
    metric = {"tiny-logreg": "accuracy", "tiny-bowl": "loss"}
    with RunStore(folder) as store:
        runs = store.runs("compare")
        records = {run["run_id"]: store.records(run["run_id"]) for run in runs}
    expected = {}
    for problem, up in higher.items():
        sign = -1.0 if up else 1.0  # as a cost: lower is better
        mine = [run for run in runs if run["problem"] == problem]
        levels = {}
        for optimizer in {run["optimizer"] for run in mine}:
            finals = [sign * r["summary"].final_metric for r in mine if r["optimizer"] == optimizer]
            levels[optimizer] = sorted(finals)[(len(finals) - 1) // 2]
        strict = min(levels.values())
        for optimizer in levels:
            steps = []
            for run in (r for r in mine if r["optimizer"] == optimizer):
                hits = [
                    r.step
                    for r in records[run["run_id"]]
                    if r.metrics and sign * r.metrics[metric[problem]] <= strict
                ]
                steps.append(hits[0] if hits else INF)
            expected[(problem, optimizer)] = sorted(steps)[(len(steps) - 1) // 2]
    return expected


def test_a_tune_over_two_problems_reports_one_profile_whose_numbers_are_the_functions(tmp_path, monkeypatch):
    # the per-problem figures are other tests' subject and most of this one's time
    monkeypatch.setattr(curves_module, "curves_figures", lambda *args: [])
    monkeypatch.setattr(curves_module, "step_size_figure", lambda *args: None)
    monkeypatch.setattr(plots_module, "trajectory_figure", lambda *args: None)
    run_tuning(
        tmp_path, ["SGD", "adam"], ["tiny-logreg", "tiny-bowl"], [0, 1, 2], options=TuneOptions(trials=1)
    )
    page = write_report(tmp_path, analysis=False).read_text()
    assert page.count("<h2>Time to target and performance profiles") == 1  # one card for both tune sections
    card = page[page.index("<h2>Time to target and performance profiles") :].split("</section>")[0]
    assert card.count("<img src='data:image/png;base64,") == 1
    (group,) = profile_groups(load_report_data(tmp_path).sections)
    profiles = group_profiles(group)
    assert list(profiles.targets) == ["tiny-logreg", "tiny-bowl"] and profiles.solvers == ["SGD", "Adam"]
    expected = _expected_steps(tmp_path)
    rows = _table_rows(card, "time-to-target")
    assert [(row[0], row[1].split()[0]) for row in rows] == [
        (problem, solver) for problem in ("tiny-logreg", "tiny-bowl") for solver in ("SGD", "Adam")
    ]
    for problem, label, strict_steps, *_ in rows:
        steps = expected[(problem, label.split()[0].lower())]
        assert strict_steps.split(" (")[0] == ("not reached" if steps == INF else f"{steps:.0f}")
    # the score of steps to the strict target, in closed form from those steps
    costs = np.array([[expected[(p, s)] for s in ("sgd", "adam")] for p in ("tiny-logreg", "tiny-bowl")])
    best = costs.min(axis=1, keepdims=True)
    ratios = np.where(np.isfinite(costs), costs / np.where(np.isfinite(best), best, 1.0), INF)
    scores = np.clip(4 - ratios, 0, None).mean(axis=0) / 3
    estimate = profiles.profiles[("strict", "steps")]
    for index, (_solver, strict_steps_score, *_) in enumerate(_table_rows(card, "profile-scores")):
        assert strict_steps_score == (
            f"{scores[index]:.3f} [{estimate.score_low[index]:.3f}, {estimate.score_high[index]:.3f}]"
        )
    for name, targets in profiles.targets.items():
        assert f"<td>{name}</td>" in card and f"<td>{targets.strict:.4g}</td>" in card
    (exported,) = json.loads((tmp_path / "report.json").read_text())["profiles"]
    strict_steps = [e for e in exported["scores"] if (e["target"], e["cost"]) == ("strict", "steps")]
    assert [e["score"] for e in strict_steps] == pytest.approx(scores.tolist(), abs=1e-12)
    times = {(e["problem"], e["target"], e["solver"]): e["steps"] for e in exported["time_to_target"]}
    for (problem, optimizer), steps in expected.items():
        solver = {"sgd": "SGD", "adam": "Adam"}[optimizer]
        assert times[(problem, "strict", solver)] == (None if steps == INF else steps)
