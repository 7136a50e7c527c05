"""The per-problem table of the report: one row per configuration, with uncertainty over seeds."""

from __future__ import annotations

import html
import math

from descentlab.lab.report.data import ProblemRuns
from descentlab.lab.report.profiles import TARGET_KINDS, GroupProfiles, SolverTimes
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


def _swatch(color: str) -> str:
    return f"<span class='swatch' style='background:{color}'></span>"


def targets_table(profiles: GroupProfiles) -> str:
    """Per problem: the metric, its start, the strict and relaxed targets and who set the strict one."""
    body = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        f"<td>{html.escape(t.metric)} {'↑' if t.higher_is_better else '↓'}</td>"
        f"<td>{format_number(t.initial)}</td><td>{format_number(t.strict)}</td>"
        f"<td>{format_number(t.relaxed)}</td><td>{html.escape(t.set_by)}</td></tr>"
        for name, t in profiles.targets.items()
    )
    head = (
        "<tr><th>problem</th><th>validation metric</th><th>at the start</th><th>strict target</th>"
        "<th>relaxed target</th><th>strict target set by</th></tr>"
    )
    return f"<table class='targets'><thead>{head}</thead><tbody>{body}</tbody></table>"


def format_cost(value: float, cost: str) -> str:
    """A finite cost as the tables print it: seconds to 3 digits, counts whole (they are integers)."""
    return f"{value:.3g}" if cost == "seconds" else f"{value:.0f}"


def _time_cells(times: SolverTimes | None, costs: list[str]) -> str:
    """The lower-median cost of each of ``costs``, the first with the seeds that reached the target."""
    if times is None:
        return "<td>not run</td>" + "<td>–</td>" * (len(costs) - 1)
    cells = []
    for index, cost in enumerate(costs):
        value = times.cost(cost)
        text = "not reached" if value == math.inf else format_cost(value, cost)
        if index == 0:
            text += f" <span class='muted'>({times.reached}/{times.seeds})</span>"
        cells.append(f"<td>{text}</td>")
    return "".join(cells)


def time_to_target_table(
    profiles: GroupProfiles, costs: list[tuple[str, str]], colors: dict[str, str]
) -> str:
    """A row per (problem, solver): the lower median over seeds of each cost to each target."""
    names = [cost for cost, _ in costs]
    head = "<tr><th rowspan='2'>problem</th><th rowspan='2'>configuration</th>" + "".join(
        f"<th colspan='{len(costs)}'>to the {kind} target</th>" for kind in TARGET_KINDS
    )
    head += "</tr><tr>" + "".join(f"<th>{title}</th>" for _ in TARGET_KINDS for _, title in costs) + "</tr>"
    body = []
    for problem in profiles.targets:
        for solver in profiles.solvers:
            times = {kind: profiles.times[(problem, kind)].get(solver) for kind in TARGET_KINDS}
            if all(value is None for value in times.values()):
                continue
            label = next(value.label for value in times.values() if value is not None)
            body.append(
                f"<tr><td>{html.escape(problem)}</td><td class='label'>{_swatch(colors[solver])}"
                f"{html.escape(solver)} <span class='muted'>{html.escape(label)}</span></td>"
                + "".join(_time_cells(times[kind], names) for kind in TARGET_KINDS)
                + "</tr>"
            )
    return f"<table class='time-to-target'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def profile_score_table(profiles: GroupProfiles, costs: list[tuple[str, str]], colors: dict[str, str]) -> str:
    """A row per solver: its profile score for each target and cost, with the 95 % bootstrap interval."""
    head = "<tr><th rowspan='2'>solver</th>" + "".join(
        f"<th colspan='{len(costs)}'>score, {kind} target</th>" for kind in TARGET_KINDS
    )
    head += "</tr><tr>" + "".join(f"<th>{title}</th>" for _ in TARGET_KINDS for _, title in costs) + "</tr>"
    body = []
    for index, solver in enumerate(profiles.solvers):
        cells = []
        for kind in TARGET_KINDS:
            for cost, _ in costs:
                estimate = profiles.profiles[(kind, cost)]
                cells.append(
                    f"<td>{estimate.score[index]:.3f} <span class='muted'>[{estimate.score_low[index]:.3f}, "
                    f"{estimate.score_high[index]:.3f}]</span></td>"
                )
        body.append(
            f"<tr><td class='label'>{_swatch(colors[solver])}{html.escape(solver)}</td>{''.join(cells)}</tr>"
        )
    return f"<table class='profile-scores'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"
