"""Per-problem numbers of the report: one row per configuration, over its seeds.

The headline is the **test** metric for problems with a test split (the sweep chose ``lr`` on
validation, so validation is not a fair place to report it) and the final metric otherwise (the loss of
a 2-D function or textbook model, which has no data split). Every value carries its estimate over seeds
(mean, sample std, 95 % bootstrap interval), and identical values over seeds are said to be identical,
never printed as a spread.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from descentlab.lab.report.data import ConfigurationRuns, ProblemRuns
from descentlab.lab.verdicts import Estimate, estimate


@dataclass
class ConfigurationRow:
    """One configuration on one problem, over its seeds.

    Estimates are over the seeds that did not diverge (``None`` when every seed diverged):
    ``headline`` (test, else final), ``validation`` (final validation metric), ``train`` (training
    subset). ``steps_to_target``/``evaluations_to_target`` are medians over the seeds that reached the
    target, ``reached`` counts them. ``tuning``: the facts of the study that chose it (``descentlab tune``).
    """

    label: str
    optimizer: str
    configuration_id: str
    lr: float | None
    swept: bool
    edge: str | None
    seeds: int
    diverged: int
    headline: Estimate | None
    validation: Estimate | None
    train: Estimate | None
    reached: int
    steps_to_target: float | None
    evaluations_to_target: float | None
    gradient_evaluations: float
    overhead_seconds_per_step: float
    seconds: float
    stop_reasons: dict[str, int]
    tuning: dict[str, Any] | None = None


def headline_key(problem_runs: ProblemRuns) -> str:
    """``"test_metric"`` when any run of the problem has a test value, else ``"final_metric"``."""
    has_test = any(
        run["summary"].test_metric is not None
        for configuration in problem_runs.configurations
        for run in configuration.runs
    )
    return "test_metric" if has_test else "final_metric"


def final_values(configuration: ConfigurationRuns, key: str) -> dict[int, float]:
    """``{seed: value}`` of a summary key over the seeds that completed."""
    values = {}
    for run in configuration.runs:
        value = getattr(run["summary"], key)
        if run["outcome"] == "completed" and value is not None:
            values[run["seed"]] = value
    return values


def _median(values: list[Any]) -> float | None:
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def configuration_rows(problem_runs: ProblemRuns) -> list[ConfigurationRow]:
    """A row per configuration of ``problem_runs``, in display order."""
    key = headline_key(problem_runs)
    rows = []
    for configuration in problem_runs.configurations:
        summaries = [run["summary"] for run in configuration.runs]
        reasons: dict[str, int] = {}
        for summary in summaries:
            reasons[summary.stop_reason] = reasons.get(summary.stop_reason, 0) + 1
        rows.append(
            ConfigurationRow(
                label=configuration.label,
                optimizer=configuration.optimizer,
                configuration_id=configuration.configuration_id,
                lr=configuration.lr,
                swept=configuration.swept,
                edge=configuration.edge,
                seeds=len(configuration.runs),
                diverged=sum(run["outcome"] != "completed" for run in configuration.runs),
                headline=estimate(list(final_values(configuration, key).values())),
                validation=estimate(list(final_values(configuration, "final_metric").values())),
                train=estimate(list(final_values(configuration, "train_metric").values())),
                reached=sum(summary.steps_to_target is not None for summary in summaries),
                steps_to_target=_median([summary.steps_to_target for summary in summaries]),
                evaluations_to_target=_median([summary.evaluations_to_target for summary in summaries]),
                gradient_evaluations=statistics.fmean(s.gradient_evaluations for s in summaries),
                overhead_seconds_per_step=statistics.fmean(s.optimizer_seconds_per_step for s in summaries),
                seconds=statistics.fmean(summary.seconds for summary in summaries),
                stop_reasons=reasons,
                tuning=configuration.tuning,
            )
        )
    return rows
