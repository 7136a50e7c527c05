"""The generated verdicts of the report: who wins on each problem, beyond noise, or which configurations tie.

A winner is named only under the rule of :mod:`descentlab.lab.verdicts` (a paired bootstrap interval
over common seeds beyond the float resolution of the metric; one seed decides only on deterministic
problems); otherwise the verdict says "tie: A, B, ...".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from descentlab.lab.comparison import metric_tolerance
from descentlab.lab.report.data import ProblemRuns
from descentlab.lab.report.statistics import ConfigurationRow, final_values, headline_key
from descentlab.lab.verdicts import Verdict, decide


def _format(value: float) -> str:
    return f"{value:.4g}"


@dataclass
class ProblemVerdict:
    """The verdict on one problem and the sentence the report prints."""

    problem: str
    verdict: Verdict
    sentence: str


def problem_verdict(problem_runs: ProblemRuns, rows: list[ConfigurationRow]) -> ProblemVerdict:
    """Decide the problem: winner beyond noise, or the configurations tied with the best."""
    problem = problem_runs.problem
    higher = problem.higher_is_better if problem else False
    metric = problem.metric if problem else "metric"
    key = headline_key(problem_runs)
    where = "test" if key == "test_metric" else "final"
    # a configuration that diverged on more seeds than another is worse, whatever its other seeds did
    fewest = min((row.diverged for row in rows if row.headline is not None), default=0)
    steady = {row.label for row in rows if row.diverged == fewest}
    candidates = {c.label: final_values(c, key) for c in problem_runs.configurations if c.label in steady}
    summaries = [run["summary"] for c in problem_runs.configurations for run in c.runs]
    tolerance = metric_tolerance(problem, summaries) if problem else 0.0
    dtype = summaries[0].dtype if summaries else "float32"
    verdict = decide(
        candidates,
        higher_is_better=higher,
        tolerance=tolerance,
        deterministic=bool(problem and getattr(problem, "deterministic", False)),
        tolerance_name=f"{dtype} resolution",
    )
    name = problem_runs.name
    by_label = {row.label: row for row in rows}
    if not verdict.tied:
        sentence = f"On {name} every configuration diverged."
    elif verdict.winner is not None:
        best = by_label[verdict.winner].headline
        sentence = (
            f"On {name}, {verdict.winner} ends best ({where} {metric} {_format(best.mean)}); "
            f"it {verdict.reason}."
        )
    elif len(verdict.tied) == 1:
        sentence = f"On {name} only {verdict.tied[0]} finished without diverging."
    else:
        best = by_label[verdict.tied[0]].headline
        sentence = (
            f"On {name}, tie: {', '.join(verdict.tied)} ({where} {metric} {_format(best.mean)} for the "
            f"first; {verdict.reason})."
        )
    diverged = [row.label for row in rows if row.diverged]
    if diverged:
        sentence += f" Diverged at least once: {', '.join(diverged)}."
    return ProblemVerdict(name, verdict, sentence)


def overall_verdict(verdicts: list[ProblemVerdict]) -> str:
    """How many problems each configuration won beyond noise, and how many ended in ties."""
    wins = Counter(v.verdict.winner for v in verdicts if v.verdict.winner is not None)
    ties = sum(1 for v in verdicts if v.verdict.winner is None and len(v.verdict.tied) > 1)
    if not verdicts:
        return "No runs to report."
    parts = []
    if wins:
        parts.append(
            "Problems won beyond noise: " + ", ".join(f"{label} ({n})" for label, n in wins.most_common())
        )
    else:
        parts.append("No configuration won any problem beyond noise")
    if ties:
        parts.append(f"{ties} of {len(verdicts)} problems are ties between the best configurations")
    return "; ".join(parts) + "."
