"""Render the report: one self-contained HTML page (inline CSS, plots as base64 PNG) plus data files.

The page is built once from the store as a :class:`~descentlab.lab.report.model.Page` (one part per
comparison of the folder and one for its stand-alone runs; inside each, a card per problem with its
verdict, warnings, figures, a table of its configurations and the "why" one click away), then rendered
by the Jinja2 templates of ``templates/``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from descentlab import __version__
from descentlab.atomic import write_text as write_text_atomic
from descentlab.lab.comparison import SWEEP_FRACTION
from descentlab.lab.report import curves, plots, why
from descentlab.lab.report.colors import configuration_colors
from descentlab.lab.report.data import ProblemRuns, ReportData, Section, load_report_data
from descentlab.lab.report.exports import write_exports
from descentlab.lab.report.figures import figure_cards
from descentlab.lab.report.model import Image, Page, Part, ProblemCard, ProfileCard, SummaryBlock
from descentlab.lab.report.profiles import (
    RELAXED_FRACTION,
    TAU_MAX,
    GroupProfiles,
    group_profiles,
    profile_groups,
)
from descentlab.lab.report.render import render_page_html
from descentlab.lab.report.statistics import ConfigurationRow, configuration_rows
from descentlab.lab.report.summary import ProblemVerdict, overall_verdict, problem_verdict
from descentlab.lab.report.tables import (
    configuration_table,
    profile_score_table,
    targets_table,
    time_to_target_table,
)
from descentlab.lab.runner import DIVERGENCE_FACTOR

REPORT_NAME = "report.html"


def image(figure, alt: str) -> Image | None:
    """The figure as an :class:`Image` (a PNG data URI), ``None`` for no figure."""
    return None if figure is None else Image(plots.figure_to_data_uri(figure), alt)


def images(*pairs) -> list[Image]:
    """The :func:`image` of each ``(figure, alt)`` pair, leaving out the missing figures."""
    made = [image(figure, alt) for figure, alt in pairs]
    return [item for item in made if item is not None]


def _anchor(section_index: int, problem: str) -> str:
    return f"s{section_index}-{problem}"


def _warnings(rows: list[ConfigurationRow], bounds: list[float]) -> list[str]:
    edges = [row for row in rows if row.swept and row.edge]
    if not edges:
        return []
    bound = f"[{bounds[0]:g}, {bounds[1]:g}]" if bounds else "its bound"
    names = ", ".join(f"{row.label} ({row.edge} edge)" for row in edges)
    return [
        f"The best learning rate sits at an edge of the sweep, which grew to its bound {bound}: {names}. "
        "The true optimum may lie beyond it."
    ]


def _problem_figures(problem_runs: ProblemRuns, rows: list[ConfigurationRow], colors) -> list[Image]:
    """2-D problems lead with their paths, then the sweep, then the curves (one image per x axis)."""
    problem, name = problem_runs.problem, problem_runs.name
    highlight = curves.highlighted(problem_runs, rows)
    pairs = []
    if problem is not None:
        pairs.append((plots.trajectory_figure(problem_runs, colors, highlight), f"{name} trajectories"))
        pairs.append((plots.sweep_figure(problem_runs, colors), f"{name} sweep"))
    pairs += [
        (figure, f"{name} {title}")
        for figure, title in curves.curves_figures(problem_runs, colors, highlight)
    ]
    return images(*pairs)


def _subtitle(problem_runs: ProblemRuns) -> str:
    problem = problem_runs.problem
    if problem is None:
        return "problem not registered"
    subtitle = f"{problem.kind} · {problem.summary}"
    if getattr(problem, "deterministic", False):
        subtitle += " · deterministic: seeds perturb the start"
    return subtitle


def _problem_card(
    section: Section, index: int, problem_runs: ProblemRuns, analysis: bool
) -> tuple[ProblemCard, ProblemVerdict, list]:
    rows = configuration_rows(problem_runs)
    colors = configuration_colors([(c.label, c.optimizer) for c in problem_runs.configurations])
    verdict = problem_verdict(problem_runs, rows)
    card = ProblemCard(
        anchor=_anchor(index, problem_runs.name),
        name=problem_runs.name,
        subtitle=_subtitle(problem_runs),
        verdict=verdict.sentence,
        warnings=_warnings(rows, section.settings.get("lr_bounds", [])),
        figures=_problem_figures(problem_runs, rows, colors),
        table=configuration_table(problem_runs, rows, colors, verdict.verdict),
        why=why.why_panel(problem_runs, rows, verdict.verdict, colors, analysis),
    )
    return card, verdict, rows


def _settings_line(section: Section) -> str:
    meta = section.settings
    if section.kind != "comparison":
        return "Runs stored with descentlab run, grouped by configuration."
    parts = [f"seeds {', '.join(map(str, meta.get('seeds', [])))}"]
    if meta.get("settings"):
        parts.append("set " + ", ".join(f"{k}={v}" for k, v in meta["settings"].items()))
    if meta.get("vary"):
        parts.append("varied " + "; ".join(f"{k} over {', '.join(v)}" for k, v in meta["vary"]))
    tuning = meta.get("tuning")
    if tuning:
        parts.append(
            f"tuned with ruleset {tuning['ruleset']}: {tuning['trials']} trials per optimizer "
            f"({tuning['sampler']} sampler, pruner {tuning['pruner']}) on seed {tuning['trial_seed']}, "
            "chosen on validation, the same budget per trial for every optimizer"
        )
    grid = meta.get("lr_grid") or []
    if grid:
        low, high = meta.get("lr_bounds", [min(grid), max(grid)])
        parts.append(
            f"lr swept from {min(grid):g} to {max(grid):g} in half decades "
            f"(growing up to [{low:g}, {high:g}]) "
            f"on seed {meta['seeds'][0]} with {meta.get('sweep_fraction', SWEEP_FRACTION):g} of the budget, "
            "chosen on validation"
        )
    return " · ".join(parts)


def _skipped_text(profiles: GroupProfiles) -> str:
    return "; ".join(f"{name} ({reason})" for name, reason in profiles.skipped.items())


def profile_sentence(profiles: GroupProfiles) -> str:
    """The headline of a profile: every solver's score for steps to the strict target, best first."""
    if not profiles.profiles:
        return f"No problem has a target: {_skipped_text(profiles)}."
    estimate = profiles.profiles[("strict", "steps")]
    order = sorted(range(len(profiles.solvers)), key=lambda i: (-estimate.score[i], profiles.solvers[i]))
    scores = "; ".join(
        f"{profiles.solvers[i]} {estimate.score[i]:.3f} [{estimate.score_low[i]:.3f}, "
        f"{estimate.score_high[i]:.3f}]"
        for i in order
    )
    count = len(profiles.targets)
    return (
        f"Profile score for steps to the strict target over {count} problem{'s' * (count != 1)} "
        f"(1: fastest everywhere, 0: never within {TAU_MAX:g}× the fastest): {scores}."
    )


def _profile_card(index: int, profiles: GroupProfiles) -> ProfileCard:
    colors = configuration_colors([(solver, profiles.optimizers[solver]) for solver in profiles.solvers])
    costs = plots.profile_costs(profiles)
    tables = []
    if profiles.targets:
        tables = [
            targets_table(profiles),
            time_to_target_table(profiles, costs, colors),
            profile_score_table(profiles, costs, colors),
        ]
    return ProfileCard(
        anchor=f"profile-{index}",
        title=profiles.group.title,
        sentence=profile_sentence(profiles),
        skipped=_skipped_text(profiles) if profiles.skipped and profiles.targets else "",
        figure=image(plots.profile_figure(profiles, colors), f"{profiles.group.title} performance profiles"),
        tables=tables,
    )


_NOTES = (
    "Runs are grouped by configuration: everything but the seed. Only seeds are replicates; a table row "
    "never mixes runs that differ in anything else.",
    "Learning problems report the test split (held out; the sweep chose lr on validation), with the "
    "validation and training-subset values beside it. 2-D functions and textbook models have no split: "
    "their column is the final loss.",
    "Values: mean ± sample standard deviation over the seeds that did not diverge, with the 95 % bootstrap "
    "interval of the mean in brackets; 'identical on n seeds' when every seed gave the same value.",
    "A winner is named only when it beats every other configuration beyond noise: the 95 % paired "
    "bootstrap interval of the per-seed difference lies above the float resolution of the metric "
    "(8 ulp of its start value). Otherwise the verdict is a tie. On deterministic problems (2-D "
    "functions and textbook models) seed 0 starts at the textbook point and other seeds perturb it.",
    "Curves: mean over seeds with a min–max band, against steps, gradient evaluations (minibatch units: "
    "SVRG, line search and Newton spend more than one per step) and training wall time (evaluation "
    "excluded). Minibatch losses are a running mean over 1/50 of the recorded steps. " + curves.CURVES_RULES,
    "A run diverges when its loss or parameters become NaN/Inf or |loss| exceeds "
    f"{DIVERGENCE_FACTOR:g} × max(|initial loss|, 1); it stops there and counts as diverged.",
    "Optimizer µs/step is the time inside optimizer.step() only (for closure-driven optimizers it includes "
    "the loss and gradient evaluations they ask for).",
    "Time to target (tunes, and comparisons of several problems), on the validation metric: a "
    "configuration's level is the lower median over seeds of its final value (a value at least half the "
    "seeds reach; diverged seeds count worst); the strict target is the best level, the relaxed one gives "
    f"back {RELAXED_FRACTION:.0%} of the way to the median start. A run's cost is the steps, gradient "
    "evaluations or training seconds at its first evaluation at or past the target; a configuration's "
    "cost is the lower median over seeds (not reached: more than half the seeds never got there).",
    "Performance profiles (Dolan & Moré 2002): ρ(τ) is the share of problems where a solver's cost is "
    f"within τ × the best solver's, for τ from 1 to {TAU_MAX:g}; the score is the area under ρ over "
    f"[1, {TAU_MAX:g}] divided by {TAU_MAX - 1:g}. Bands and brackets: 95 % bootstrap over seeds "
    "(each solver's seeds redrawn on each problem), targets held fixed.",
)


@dataclass
class BuiltPage:
    """The page model with what the data files need: the loaded data, the tables and the profiles."""

    page: Page
    data: ReportData
    tables: dict[str, dict[str, list[ConfigurationRow]]]
    profiles: list[GroupProfiles]


def _part(
    index: int, section: Section, profiles: list[GroupProfiles], analysis: bool
) -> tuple[Part, list, dict]:
    cards, verdicts, tables = [], [], {}
    for problem_runs in section.problems:
        card, verdict, rows = _problem_card(section, index, problem_runs, analysis)
        cards.append(card)
        verdicts.append(verdict)
        tables[problem_runs.name] = rows
    part = Part(section.title, _settings_line(section), cards)
    part.profiles = [
        _profile_card(number, group)
        for number, group in enumerate(profiles)
        if group.group.after_section == index
    ]
    return part, verdicts, tables


def build_page(out_dir: str | Path, analysis: bool = True) -> BuiltPage:
    """Read the store of ``out_dir`` once and build the whole page model from it.

    ``analysis=False`` leaves out the end-point analysis of the best configurations (the one part of
    the page that trains again; see :data:`descentlab.lab.report.why.RULE`).
    """
    data = load_report_data(out_dir)
    profiles = [group_profiles(group) for group in profile_groups(data.sections)]
    parts, summary, tables = [], [], {}
    for index, section in enumerate(data.sections):
        part, verdicts, tables[section.title] = _part(index, section, profiles, analysis)
        parts.append(part)
        summary.append(SummaryBlock(section.title, overall_verdict(verdicts), [v.sentence for v in verdicts]))
        summary += [
            SummaryBlock(f"time to target: {group.group.title}", profile_sentence(group))
            for group in profiles
            if group.group.after_section == index
        ]
    runs_total = sum(len(c.runs) for s in data.sections for p in s.problems for c in p.configurations)
    configurations = sum(len(p.configurations) for s in data.sections for p in s.problems)
    count = len(data.sections)
    page = Page(
        subtitle=f"{count} part{'s' * (count != 1)} · {configurations} configurations · {runs_total} runs",
        summary=summary,
        parts=parts,
        figures=figure_cards(out_dir, data.figures),
        notes=[*_NOTES, why.RULE],
        footer=f"descentlab {__version__} · generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    )
    return BuiltPage(page, data, tables, profiles)


def render_page(
    out_dir: str | Path, analysis: bool = True
) -> tuple[str, ReportData, dict, list[GroupProfiles]]:
    """The HTML text of the report of ``out_dir``, the loaded data, the tables and the profiles (for the
    data files); ``analysis`` as for :func:`build_page`."""
    built = build_page(out_dir, analysis)
    return render_page_html(built.page), built.data, built.tables, built.profiles


def write_report(out_dir: str | Path, report_dir: str | Path | None = None, *, analysis: bool = True) -> Path:
    """Write ``report.html``, ``runs.csv``, ``records.csv`` and ``report.json`` of the store in ``out_dir``.

    Args:
        out_dir: the results folder (its store is only read).
        report_dir: where the four files go (default ``out_dir``; a folder one may only read
            reports elsewhere).
        analysis: include the end-point analysis of each problem's best configuration (it trains
            that run again; see :data:`descentlab.lab.report.why.RULE`).

    Returns:
        The path of ``report.html``.
    """
    page, data, tables, profiles = render_page(out_dir, analysis)
    report_dir = Path(out_dir if report_dir is None else report_dir)
    write_exports(report_dir, data, tables, profiles)
    return write_text_atomic(report_dir / REPORT_NAME, page)
