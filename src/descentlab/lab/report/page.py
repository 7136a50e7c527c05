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
from descentlab.lab.report.plots import curves_figure, figure_to_data_uri, sweep_figure, trajectory_figure
from descentlab.lab.report.statistics import ConfigurationRow, configuration_rows
from descentlab.lab.report.summary import ProblemVerdict, overall_verdict, problem_verdict
from descentlab.lab.report.tables import configuration_table
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
)


def render_page(out_dir: str | Path) -> tuple[str, ReportData, dict]:
    """The HTML text of the report of ``out_dir``, the loaded data and the tables (for the data files)."""
    data = load_report_data(out_dir)
    bodies, all_verdicts, tables = [], [], {}
    summary_items = []
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
    return page, data, tables


def write_report(out_dir: str | Path) -> Path:
    """Write ``report.html``, ``runs.csv``, ``records.csv`` and ``report.json`` in ``out_dir``.

    Returns:
        The path of ``report.html``.
    """
    out_dir = Path(out_dir)
    page, data, tables = render_page(out_dir)
    write_exports(out_dir, data, tables)
    return write_text_atomic(out_dir / REPORT_NAME, page)
