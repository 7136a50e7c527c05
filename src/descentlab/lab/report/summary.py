"""The generated "who won where" paragraph of the report."""

from __future__ import annotations

from collections import Counter

from descentlab.lab.report.colors import display_name
from descentlab.lab.report.data import ProblemRuns
from descentlab.lab.report.statistics import OptimizerRow, rank_rows


def _format(value: float) -> str:
    return f"{value:.4g}"


def problem_verdict(problem_runs: ProblemRuns, rows: list[OptimizerRow]) -> str:
    """One sentence: the winner on the final metric, the fastest to target, and who diverged."""
    problem = problem_runs.problem
    higher = problem.higher_is_better if problem else False
    metric = problem.metric if problem else "metric"
    ranked = [row for row in rank_rows(rows, higher) if row.final is not None]
    if not ranked:
        return f"On {problem_runs.name} every optimizer diverged."
    winner = ranked[0]
    sentence = (
        f"On {problem_runs.name}, {display_name(winner.optimizer)} ends best "
        f"({metric} {_format(winner.final[0])}"
    )
    if len(ranked) > 1:
        sentence += f"; runner-up {display_name(ranked[1].optimizer)} {_format(ranked[1].final[0])}"
    sentence += ")."
    reached = [row for row in rows if row.steps_to_target is not None and row.reached == row.seeds]
    if reached:
        fastest = min(reached, key=lambda row: row.steps_to_target)
        sentence += (
            f" Fastest to the target {_format(problem.target)}: {display_name(fastest.optimizer)} "
            f"in {fastest.steps_to_target:g} steps."
        )
    diverged = [display_name(row.optimizer) for row in rows if row.diverged]
    if diverged:
        sentence += f" Diverged at least once: {', '.join(diverged)}."
    return sentence


def overall_verdict(winners: list[str]) -> str:
    """Which optimizers won how many problems."""
    if not winners:
        return "No problem had an optimizer that finished without diverging."
    counts = Counter(winners).most_common()
    parts = [f"{display_name(name)} ({count})" for name, count in counts]
    return (
        f"Problems won, by optimizer: {', '.join(parts)}. No optimizer wins everywhere."
        if len(counts) > 1
        else f"{display_name(counts[0][0])} won every problem ({counts[0][1]})."
    )
