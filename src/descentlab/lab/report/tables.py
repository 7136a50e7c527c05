"""The per-problem table of the report: one row per configuration, with uncertainty over seeds."""

from __future__ import annotations

import html

from descentlab.lab.report.data import ProblemRuns
from descentlab.lab.report.statistics import ConfigurationRow, headline_key
from descentlab.lab.verdicts import Estimate, Verdict


def format_number(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, or an en dash for ``None``."""
    return "–" if value is None else f"{value:.{digits}g}"


def format_estimate(value: Estimate | None) -> str:
    """``mean ± std [low, high]``; one seed or identical seeds say so instead of printing a spread."""
    if value is None:
        return "–"
    if value.n == 1:
        return f"{value.mean:.4g} <span class='muted'>(1 seed)</span>"
    if value.identical:
        return f"{value.mean:.4g} <span class='muted'>(identical on {value.n} seeds)</span>"
    return (
        f"{value.mean:.4g} ± {value.std:.2g} <span class='muted'>[{value.low:.4g}, {value.high:.4g}]</span>"
    )


def _lr_cell(row: ConfigurationRow) -> str:
    text = format_number(row.lr, 3) if row.lr is not None else "default"
    if row.tuning and row.tuning["trials"]:
        return f"{text} <span class='muted'>tuned</span>"
    if not row.swept:
        return text
    if row.edge:
        title = f"chosen at the {row.edge} edge of the bounded sweep"
        return f"{text} <span class='bad' title='{title}'>⚠ edge</span>"
    return f"{text} <span class='muted'>swept</span>"


def tuning_cell(tuning: dict | None) -> str:
    """The tuning cost of a tuned configuration: trials x budget, with pruned trials and steps trained."""
    if not tuning:
        return "–"
    if not tuning["trials"]:
        return "none <span class='muted'>(published defaults)</span>"
    unit = tuning["unit"]
    cost = f"{tuning['trials']} × {tuning['budget']:,} {unit} = {tuning['cost']:,}"
    detail = f"{tuning['pruned']} pruned; {tuning['steps_trained']:,} steps trained"
    return f"{cost} <span class='muted'>({detail})</span>"


def configuration_table(
    problem_runs: ProblemRuns, rows: list[ConfigurationRow], colors: dict[str, str], verdict: Verdict
) -> str:
    """The HTML table; the winner's row is marked, tied rows are marked as tied."""
    problem = problem_runs.problem
    metric = html.escape(problem.metric if problem else "metric")
    arrow = "↑" if problem and problem.higher_is_better else "↓"
    target = problem.target if problem else None
    test = headline_key(problem_runs) == "test_metric"
    headline = f"test {metric} {arrow}" if test else f"final {metric} {arrow}"
    extra = f"<th>validation {metric}</th><th>train {metric}</th>" if test else ""
    tuned = any(row.tuning for row in rows)
    head = (
        f"<tr><th>configuration</th><th>lr</th><th>{headline}</th>{extra}"
        f"{'<th>tuning cost</th>' if tuned else ''}"
        f"<th>steps to {format_number(target)}</th><th>grad evals to {format_number(target)}</th>"
        "<th>diverged/failed</th><th>optimizer µs/step</th><th>run seconds</th></tr>"
    )
    tied = set(verdict.tied) if verdict.winner is None and len(verdict.tied) > 1 else set()
    body = []
    for row in rows:
        reached = f" <span class='muted'>({row.reached}/{row.seeds})</span>" if target is not None else ""
        diverged = (
            f"<span class='bad'>{row.diverged}/{row.seeds}</span>" if row.diverged else f"0/{row.seeds}"
        )
        steps = "–" if row.steps_to_target is None else f"{row.steps_to_target:g}{reached}"
        evaluations = "–" if row.evaluations_to_target is None else f"{row.evaluations_to_target:g}"
        mark = " class=winner" if row.label == verdict.winner else " class=tied" if row.label in tied else ""
        validation = (
            f"<td>{format_estimate(row.validation)}</td><td>{format_estimate(row.train)}</td>" if test else ""
        )
        if tuned:
            validation += f"<td>{tuning_cell(row.tuning)}</td>"
        body.append(
            f"<tr{mark}><td class='label'><span class='swatch' style='background:{colors[row.label]}'></span>"
            f"{html.escape(row.label)}</td><td>{_lr_cell(row)}</td><td>{format_estimate(row.headline)}</td>"
            f"{validation}<td>{steps}</td><td>{evaluations}</td><td>{diverged}</td>"
            f"<td>{row.overhead_seconds_per_step * 1e6:.1f}</td><td>{row.seconds:.3g}</td></tr>"
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
