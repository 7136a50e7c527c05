"""Per-problem numbers of the report: one row per optimizer, aggregated over seeds."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from descentlab.lab.report.colors import order_optimizers
from descentlab.lab.report.data import ProblemRuns


@dataclass
class OptimizerRow:
    """One optimizer on one problem, over its seeds.

    ``final``/``best`` are ``(mean, std)`` of the headline metric over the seeds that did not diverge
    (``None`` when every seed diverged); ``steps_to_target``/``seconds_to_target`` are medians over
    the seeds that reached the target, ``reached`` counts them.
    """

    optimizer: str
    lr: float | None
    seeds: int
    diverged: int
    final: tuple[float, float] | None
    best: tuple[float, float] | None
    reached: int
    steps_to_target: float | None
    seconds_to_target: float | None
    overhead_seconds_per_step: float
    seconds: float


def _mean_std(values: list[float]) -> tuple[float, float] | None:
    values = [value for value in values if value is not None and math.isfinite(value)]
    if not values:
        return None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _median(values: list[Any]) -> float | None:
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def optimizer_rows(problem_runs: ProblemRuns) -> list[OptimizerRow]:
    """A row per optimizer of ``problem_runs``, in the canonical optimizer order."""
    rows = []
    for optimizer in order_optimizers(list(problem_runs.runs)):
        runs = problem_runs.runs[optimizer]
        summaries = [run["summary"] for run in runs]
        completed = [run["summary"] for run in runs if run["outcome"] == "completed"]
        rows.append(
            OptimizerRow(
                optimizer=optimizer,
                lr=runs[0]["spec"].hyperparameter_dict.get("lr"),
                seeds=len(runs),
                diverged=sum(run["outcome"] == "diverged" for run in runs),
                final=_mean_std([summary.get("final_metric") for summary in completed]),
                best=_mean_std([summary.get("best_metric") for summary in completed]),
                reached=sum(summary.get("steps_to_target") is not None for summary in summaries),
                steps_to_target=_median([summary.get("steps_to_target") for summary in summaries]),
                seconds_to_target=_median([summary.get("seconds_to_target") for summary in summaries]),
                overhead_seconds_per_step=statistics.fmean(
                    summary["optimizer_seconds_per_step"] for summary in summaries
                ),
                seconds=statistics.fmean(summary["seconds"] for summary in summaries),
            )
        )
    return rows


def rank_rows(rows: list[OptimizerRow], higher_is_better: bool) -> list[OptimizerRow]:
    """Rows best first: fewest divergences, then the best mean final metric."""

    def key(row: OptimizerRow) -> tuple[float, float]:
        if row.final is None:
            return (row.diverged, math.inf)
        return (row.diverged, -row.final[0] if higher_is_better else row.final[0])

    return sorted(rows, key=key)
