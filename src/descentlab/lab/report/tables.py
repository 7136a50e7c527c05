"""The report's tables as data (:class:`~descentlab.lab.report.model.Table`): one row per configuration
with uncertainty over seeds, and the time-to-target and profile-score tables."""

from __future__ import annotations

import math

from descentlab.lab.report.data import ProblemRuns
from descentlab.lab.report.model import Cell, Row, Table
from descentlab.lab.report.profiles import TARGET_KINDS, GroupProfiles, SolverTimes
from descentlab.lab.report.statistics import ConfigurationRow, headline_key
from descentlab.lab.verdicts import Estimate, Verdict


def format_number(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, or an en dash for ``None``."""
    return "–" if value is None else f"{value:.{digits}g}"


def estimate_cell(value: Estimate | None) -> Cell:
    """``mean ± std [low, high]``; one seed or identical seeds say so instead of printing a spread."""
    if value is None:
        return Cell("–")
    if value.n == 1:
        return Cell(f"{value.mean:.4g}", note="(1 seed)")
    if value.identical:
        return Cell(f"{value.mean:.4g}", note=f"(identical on {value.n} seeds)")
    return Cell(f"{value.mean:.4g} ± {value.std:.2g}", note=f"[{value.low:.4g}, {value.high:.4g}]")


def _lr_cell(row: ConfigurationRow) -> Cell:
    text = format_number(row.lr, 3) if row.lr is not None else "default"
    if row.tuning and row.tuning["trials"]:
        return Cell(text, note="tuned")
    if not row.swept:
        return Cell(text)
    if row.edge:
        return Cell(
            text, warning="⚠ edge", warning_title=f"chosen at the {row.edge} edge of the bounded sweep"
        )
    return Cell(text, note="swept")


def tuning_cell(tuning: dict | None) -> Cell:
    """The tuning cost of a tuned configuration: trials x budget, with pruned trials and steps trained."""
    if not tuning:
        return Cell("–")
    if not tuning["trials"]:
        return Cell("none", note="(published defaults)")
    unit = tuning["unit"]
    cost = f"{tuning['trials']} × {tuning['budget']:,} {unit} = {tuning['cost']:,}"
    return Cell(cost, note=f"({tuning['pruned']} pruned; {tuning['steps_trained']:,} steps trained)")


def _header(*titles: str) -> list[Cell]:
    return [Cell(title) for title in titles]


def configuration_table(
    problem_runs: ProblemRuns, rows: list[ConfigurationRow], colors: dict[str, str], verdict: Verdict
) -> Table:
    """One row per configuration; the winner's row is marked, tied rows are marked as tied."""
    problem = problem_runs.problem
    metric = problem.metric if problem else "metric"
    arrow = "↑" if problem and problem.higher_is_better else "↓"
    target = problem.target if problem else None
    test = headline_key(problem_runs) == "test_metric"
    tuned = any(row.tuning for row in rows)
    head = _header(
        "configuration",
        "lr",
        f"test {metric} {arrow}" if test else f"final {metric} {arrow}",
        *((f"validation {metric}", f"train {metric}") if test else ()),
        *(("tuning cost",) if tuned else ()),
        f"steps to {format_number(target)}",
        f"grad evals to {format_number(target)}",
        "diverged/failed",
        "optimizer µs/step",
        "run seconds",
    )
    tied = set(verdict.tied) if verdict.winner is None and len(verdict.tied) > 1 else set()
    body = []
    for row in rows:
        reached = f"({row.reached}/{row.seeds})" if target is not None else ""
        cells = [
            Cell(row.label, swatch=colors[row.label], label=True),
            _lr_cell(row),
            estimate_cell(row.headline),
            *((estimate_cell(row.validation), estimate_cell(row.train)) if test else ()),
            *((tuning_cell(row.tuning),) if tuned else ()),
            Cell("–") if row.steps_to_target is None else Cell(f"{row.steps_to_target:g}", note=reached),
            Cell("–" if row.evaluations_to_target is None else f"{row.evaluations_to_target:g}"),
            Cell(f"{row.diverged}/{row.seeds}", bad=row.diverged > 0),
            Cell(f"{row.overhead_seconds_per_step * 1e6:.1f}"),
            Cell(f"{row.seconds:.3g}"),
        ]
        mark = "winner" if row.label == verdict.winner else "tied" if row.label in tied else ""
        body.append(Row(cells, mark))
    return Table([head], body)


def targets_table(profiles: GroupProfiles) -> Table:
    """Per problem: the metric, its start, the strict and relaxed targets and who set the strict one."""
    body = [
        Row(
            [
                Cell(name),
                Cell(f"{t.metric} {'↑' if t.higher_is_better else '↓'}"),
                Cell(format_number(t.initial)),
                Cell(format_number(t.strict)),
                Cell(format_number(t.relaxed)),
                Cell(t.set_by),
            ]
        )
        for name, t in profiles.targets.items()
    ]
    head = _header(
        "problem",
        "validation metric",
        "at the start",
        "strict target",
        "relaxed target",
        "strict target set by",
    )
    return Table([head], body, "targets")


def format_cost(value: float, cost: str) -> str:
    """A finite cost as the tables print it: seconds to 3 digits, counts whole (they are integers)."""
    return f"{value:.3g}" if cost == "seconds" else f"{value:.0f}"


def _time_cells(times: SolverTimes | None, costs: list[str]) -> list[Cell]:
    """The lower-median cost of each of ``costs``, the first with the seeds that reached the target."""
    if times is None:
        return [Cell("not run")] + [Cell("–") for _ in costs[1:]]
    cells = []
    for index, cost in enumerate(costs):
        value = times.cost(cost)
        text = "not reached" if value == math.inf else format_cost(value, cost)
        cells.append(Cell(text, note=f"({times.reached}/{times.seeds})" if index == 0 else ""))
    return cells


def _two_level_head(first: str, group: str, costs: list[tuple[str, str]]) -> list[list[Cell]]:
    """A header of ``first`` columns over two rows, then a column group per target kind."""
    top = [Cell(title, rowspan=2) for title in first.split("|")]
    top += [Cell(group.format(kind=kind), colspan=len(costs)) for kind in TARGET_KINDS]
    return [top, [Cell(title) for _ in TARGET_KINDS for _, title in costs]]


def time_to_target_table(
    profiles: GroupProfiles, costs: list[tuple[str, str]], colors: dict[str, str]
) -> Table:
    """A row per (problem, solver): the lower median over seeds of each cost to each target."""
    names = [cost for cost, _ in costs]
    body = []
    for problem in profiles.targets:
        for solver in profiles.solvers:
            times = {kind: profiles.times[(problem, kind)].get(solver) for kind in TARGET_KINDS}
            if all(value is None for value in times.values()):
                continue
            label = next(value.label for value in times.values() if value is not None)
            cells = [Cell(problem), Cell(solver, note=label, swatch=colors[solver], label=True)]
            for kind in TARGET_KINDS:
                cells += _time_cells(times[kind], names)
            body.append(Row(cells))
    return Table(
        _two_level_head("problem|configuration", "to the {kind} target", costs), body, "time-to-target"
    )


def profile_score_table(
    profiles: GroupProfiles, costs: list[tuple[str, str]], colors: dict[str, str]
) -> Table:
    """A row per solver: its profile score for each target and cost, with the 95 % bootstrap interval."""
    body = []
    for index, solver in enumerate(profiles.solvers):
        cells = [Cell(solver, swatch=colors[solver], label=True)]
        for kind in TARGET_KINDS:
            for cost, _ in costs:
                estimate = profiles.profiles[(kind, cost)]
                cells.append(
                    Cell(
                        f"{estimate.score[index]:.3f}",
                        note=f"[{estimate.score_low[index]:.3f}, {estimate.score_high[index]:.3f}]",
                    )
                )
        body.append(Row(cells))
    return Table(_two_level_head("solver", "score, {kind} target", costs), body, "profile-scores")
