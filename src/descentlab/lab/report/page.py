"""Render the report: one self-contained HTML page (inline CSS, plots as base64 PNG) plus data files.

The page holds one part per comparison of the folder and one for its stand-alone runs; inside each, a
card per problem with its verdict, warnings, figures and a table of its configurations.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from descentlab import __version__
from descentlab.atomic import write_text as write_text_atomic
from descentlab.lab.comparison import SWEEP_FRACTION
from descentlab.lab.report.colors import configuration_colors
from descentlab.lab.report.data import ProblemRuns, ReportData, Section, load_report_data
from descentlab.lab.report.exports import write_exports
from descentlab.lab.report.figures import figures_section
from descentlab.lab.report.plots import (
    curves_figure,
    figure_to_data_uri,
    profile_costs,
    profile_figure,
    sweep_figure,
    trajectory_figure,
)
from descentlab.lab.report.profiles import (
    RELAXED_FRACTION,
    TAU_MAX,
    GroupProfiles,
    group_profiles,
    profile_groups,
)
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

_CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --card:#ffffff; --bg:#f6f7f9; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#0f172a; color:#f8fafc; padding:28px 40px 22px; }
header h1 { margin:0 0 4px; font-size:26px; font-weight:650; letter-spacing:-0.01em; }
header p { margin:0; color:#cbd5e1; }
main { max-width:1180px; margin:0 auto; padding:24px 28px 60px; }
nav { display:flex; flex-wrap:wrap; gap:8px; margin:0 0 20px; }
nav a { text-decoration:none; color:var(--accent); background:#fff; border:1px solid var(--line);
        padding:3px 10px; border-radius:999px; font-size:13px; }
section.card { background:var(--card); border:1px solid var(--line); border-radius:10px;
               padding:20px 24px; margin:0 0 22px; box-shadow:0 1px 2px rgba(0,0,0,0.03); }
h2 { margin:0 0 6px; font-size:20px; }
h2 small { color:var(--muted); font-weight:400; font-size:14px; margin-left:8px; }
.verdict { margin:6px 0 14px; padding:8px 12px; background:#eff6ff; border-left:3px solid var(--accent);
           border-radius:4px; }
.figures { display:flex; flex-wrap:wrap; gap:16px; align-items:flex-start; }
.figures img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
.figures img.half { max-width:calc(50% - 8px); }
@media (max-width: 900px) { .figures img.half { max-width:100%; } }
table { border-collapse:collapse; width:100%; margin:14px 0 4px; font-size:13.5px;
        font-variant-numeric: tabular-nums; }
th, td { padding:6px 10px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th { background:#f9fafb; font-weight:600; color:#374151; }
th:first-child, td:first-child { text-align:left; }
tr.winner td { background:#f0fdf4; font-weight:600; }
tr.tied td { background:#f8fafc; }
.swatch { display:inline-block; width:11px; height:11px; border-radius:3px; margin-right:7px;
          vertical-align:-1px; }
.bad { color:#b91c1c; }
.warn { margin:6px 0 10px; padding:8px 12px; background:#fffbeb; border-left:3px solid #d97706;
        border-radius:4px; }
h2.section { margin:30px 0 4px; font-size:22px; }
p.settings { color:var(--muted); margin:0 0 14px; }
td.label { white-space:normal; max-width:420px; }
div.scroll { overflow-x:auto; }
.muted { color:var(--muted); }
ul.notes { color:#374151; padding-left:20px; }
footer { color:var(--muted); font-size:13px; text-align:center; padding:10px; }
"""


def _image(figure, alt: str, half: bool = False) -> str:
    """An ``<img>`` holding ``figure`` as a data URI (empty for ``None``); ``half`` shares a row."""
    if figure is None:
        return ""
    size = " class='half'" if half else ""
    return f"<img{size} src='{figure_to_data_uri(figure)}' alt='{html.escape(alt)}'>"


def _anchor(section_index: int, problem: str) -> str:
    return html.escape(f"s{section_index}-{problem}")


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


def _problem_card(
    section: Section, index: int, problem_runs: ProblemRuns
) -> tuple[str, ProblemVerdict, list]:
    problem = problem_runs.problem
    rows = configuration_rows(problem_runs)
    colors = configuration_colors([(c.label, c.optimizer) for c in problem_runs.configurations])
    verdict = problem_verdict(problem_runs, rows)
    sweep = {c.label: c.sweep for c in problem_runs.configurations if c.swept}
    sweep_plot = None
    if problem is not None and sweep:
        sweep_plot = sweep_figure(problem_runs.name, sweep, colors, problem.metric, problem.higher_is_better)
    trajectories = trajectory_figure(problem_runs, colors) if problem is not None else None
    curves = _image(curves_figure(problem_runs, colors), f"{problem_runs.name} curves")
    if trajectories is not None:  # 2-D problems lead with their paths (sweep beside them)
        figures = [
            _image(trajectories, f"{problem_runs.name} trajectories", half=True),
            _image(sweep_plot, f"{problem_runs.name} sweep", half=True),
            curves,
        ]
    else:
        figures = [curves, _image(sweep_plot, f"{problem_runs.name} sweep", half=True)]
    subtitle = html.escape(f"{problem.kind} · {problem.summary}") if problem else "problem not registered"
    if problem is not None and getattr(problem, "deterministic", False):
        subtitle += " · deterministic: seeds perturb the start"
    warnings = "".join(
        f"<p class='warn'>{html.escape(text)}</p>"
        for text in _warnings(rows, section.settings.get("lr_bounds", []))
    )
    card = (
        f"<section class='card' id='{_anchor(index, problem_runs.name)}'>"
        f"<h2>{html.escape(problem_runs.name)}<small>{subtitle}</small></h2>"
        f"<p class='verdict'>{html.escape(verdict.sentence)}</p>{warnings}"
        f"<div class='figures'>{''.join(figures)}</div>"
        f"<div class='scroll'>{configuration_table(problem_runs, rows, colors, verdict.verdict)}</div>"
        "</section>"
    )
    return card, verdict, rows


def _settings_line(section: Section) -> str:
    meta = section.settings
    if section.kind != "comparison":
        return "Runs stored with <code>descentlab run</code>, grouped by configuration."
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
    return html.escape(" · ".join(parts))


def _section(index: int, section: Section) -> tuple[str, list[ProblemVerdict], list]:
    cards, verdicts, tables = [], [], {}
    for problem_runs in section.problems:
        card, verdict, rows = _problem_card(section, index, problem_runs)
        cards.append(card)
        verdicts.append(verdict)
        tables[problem_runs.name] = rows
    nav = "".join(f"<a href='#{_anchor(index, p.name)}'>{html.escape(p.name)}</a>" for p in section.problems)
    body = (
        f"<h2 class='section'>{html.escape(section.title)}</h2>"
        f"<p class='settings'>{_settings_line(section)}</p><nav>{nav}</nav>{''.join(cards)}"
    )
    return body, verdicts, tables


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


def _profile_card(index: int, profiles: GroupProfiles) -> str:
    colors = configuration_colors([(solver, profiles.optimizers[solver]) for solver in profiles.solvers])
    costs = profile_costs(profiles)
    skipped = (
        f"<p class='warn'>Left out, without a target: {html.escape(_skipped_text(profiles))}.</p>"
        if profiles.skipped and profiles.targets
        else ""
    )
    tables = ""
    if profiles.targets:
        tables = (
            f"<div class='scroll'>{targets_table(profiles)}</div>"
            f"<div class='scroll'>{time_to_target_table(profiles, costs, colors)}</div>"
            f"<div class='scroll'>{profile_score_table(profiles, costs, colors)}</div>"
        )
    figure = _image(profile_figure(profiles, colors), f"{profiles.group.title} performance profiles")
    return (
        f"<section class='card' id='profile-{index}'>"
        f"<h2>Time to target and performance profiles<small>{html.escape(profiles.group.title)}</small></h2>"
        f"<p class='verdict'>{html.escape(profile_sentence(profiles))}</p>{skipped}"
        f"<div class='figures'>{figure}</div>{tables}</section>"
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
    "excluded). Minibatch losses are a running mean over 1/50 of the recorded steps.",
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


def render_page(out_dir: str | Path) -> tuple[str, ReportData, dict, list[GroupProfiles]]:
    """The HTML text of the report of ``out_dir``, the loaded data, the tables and the profiles (for the
    data files)."""
    data = load_report_data(out_dir)
    bodies, all_verdicts, tables = [], [], {}
    summary_items = []
    profiles = [group_profiles(group) for group in profile_groups(data.sections)]
    for index, section in enumerate(data.sections):
        body, verdicts, section_tables = _section(index, section)
        bodies.append(body)
        all_verdicts += verdicts
        tables[section.title] = section_tables
        summary_items.append(
            f"<h3>{html.escape(section.title)}</h3>"
            f"<p class='verdict'>{html.escape(overall_verdict(verdicts))}</p>"
            f"<ul>{''.join(f'<li>{html.escape(v.sentence)}</li>' for v in verdicts)}</ul>"
        )
        for number, group in enumerate(profiles):
            if group.group.after_section == index:
                bodies.append(_profile_card(number, group))
                summary_items.append(
                    f"<h3>time to target: {html.escape(group.group.title)}</h3>"
                    f"<p class='verdict'>{html.escape(profile_sentence(group))}</p>"
                )
    runs_total = sum(len(c.runs) for s in data.sections for p in s.problems for c in p.configurations)
    configurations = sum(len(p.configurations) for s in data.sections for p in s.problems)
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        f"<title>descentlab report</title><style>{_CSS}</style></head><body>"
        "<header><h1>descentlab: optimizer comparison</h1>"
        f"<p>{len(data.sections)} part{'s' * (len(data.sections) != 1)} · {configurations} configurations · "
        f"{runs_total} runs</p>"
        "</header><main><section class='card'><h2>Summary</h2>"
        f"{''.join(summary_items) or '<p>No runs stored.</p>'}</section>"
        f"{''.join(bodies)}{figures_section(out_dir)}"
        "<section class='card'><h2>How to read this</h2>"
        f"<ul class='notes'>{''.join(f'<li>{html.escape(note)}</li>' for note in _NOTES)}</ul>"
        "<p>Data: <a href='runs.csv'>runs.csv</a> · <a href='records.csv'>records.csv</a> · "
        "<a href='report.json'>report.json</a></p></section></main>"
        f"<footer>descentlab {__version__} · generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        "</footer></body></html>"
    )
    return page, data, tables, profiles


def write_report(out_dir: str | Path, report_dir: str | Path | None = None) -> Path:
    """Write ``report.html``, ``runs.csv``, ``records.csv`` and ``report.json`` of the store in ``out_dir``.

    Args:
        out_dir: the results folder (its store is only read).
        report_dir: where the four files go (default ``out_dir``; a folder one may only read
            reports elsewhere).

    Returns:
        The path of ``report.html``.
    """
    page, data, tables, profiles = render_page(out_dir)
    report_dir = Path(out_dir if report_dir is None else report_dir)
    write_exports(report_dir, data, tables, profiles)
    return write_text_atomic(report_dir / REPORT_NAME, page)
