"""Render the report: one self-contained HTML page (inline CSS, plots as base64 PNG) plus data files."""

from __future__ import annotations

import html
import time
from pathlib import Path

from descentlab import __version__
from descentlab.lab.comparison import SWEEP_FRACTION
from descentlab.lab.report.atomic_file import write_text_atomic
from descentlab.lab.report.colors import display_name, optimizer_colors
from descentlab.lab.report.data import ProblemRuns, load_report_data
from descentlab.lab.report.exports import write_exports
from descentlab.lab.report.plots import curves_figure, figure_to_data_uri, sweep_figure, trajectory_figure
from descentlab.lab.report.statistics import OptimizerRow, optimizer_rows, rank_rows
from descentlab.lab.report.summary import overall_verdict, problem_verdict
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
.swatch { display:inline-block; width:11px; height:11px; border-radius:3px; margin-right:7px;
          vertical-align:-1px; }
.bad { color:#b91c1c; }
.muted { color:var(--muted); }
ul.notes { color:#374151; padding-left:20px; }
footer { color:var(--muted); font-size:13px; text-align:center; padding:10px; }
"""


def _format(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}g}"


def _mean_std(pair: tuple[float, float] | None) -> str:
    return "–" if pair is None else f"{pair[0]:.4g} ± {pair[1]:.2g}"


def _table(problem_runs: ProblemRuns, rows: list[OptimizerRow], colors: dict[str, str]) -> str:
    problem = problem_runs.problem
    metric = problem.metric if problem else "metric"
    higher = problem.higher_is_better if problem else False
    target = problem.target if problem else None
    ranked = rank_rows(rows, higher)
    winner = ranked[0].optimizer if ranked and ranked[0].final is not None else None
    arrow = "↑" if higher else "↓"
    head = (
        f"<tr><th>optimizer</th><th>lr</th><th>final {html.escape(metric)} {arrow}</th>"
        f"<th>best {html.escape(metric)} {arrow}</th>"
        f"<th>steps to {_format(target)}</th><th>seconds to {_format(target)}</th>"
        "<th>diverged</th><th>optimizer µs/step</th><th>run seconds</th></tr>"
    )
    body = []
    for row in rows:
        reached = f" <span class='muted'>({row.reached}/{row.seeds})</span>" if target is not None else ""
        diverged = (
            f"<span class='bad'>{row.diverged}/{row.seeds}</span>" if row.diverged else f"0/{row.seeds}"
        )
        steps = "–" if row.steps_to_target is None else f"{row.steps_to_target:g}{reached}"
        seconds = "–" if row.seconds_to_target is None else f"{row.seconds_to_target:.3g}"
        body.append(
            f"<tr{' class=winner' if row.optimizer == winner else ''}>"
            f"<td><span class='swatch' style='background:{colors[row.optimizer]}'></span>"
            f"{html.escape(display_name(row.optimizer))}</td><td>{_format(row.lr, 3)}</td>"
            f"<td>{_mean_std(row.final)}</td><td>{_mean_std(row.best)}</td><td>{steps}</td><td>{seconds}</td>"
            f"<td>{diverged}</td><td>{row.overhead_seconds_per_step * 1e6:.1f}</td>"
            f"<td>{row.seconds:.3g}</td></tr>"
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def _image(figure, alt: str, half: bool = False) -> str:
    """An ``<img>`` holding ``figure`` as a data URI (empty for ``None``); ``half`` shares a row."""
    if figure is None:
        return ""
    size = " class='half'" if half else ""
    return f"<img{size} src='{figure_to_data_uri(figure)}' alt='{html.escape(alt)}'>"


def render_page(out_dir: str | Path) -> tuple[str, object]:
    """The HTML text of the report of ``out_dir`` and the loaded data (for the data files)."""
    data = load_report_data(out_dir)
    all_optimizers = sorted({name for problem in data.problems for name in problem.runs})
    colors = optimizer_colors(all_optimizers)
    sweep = data.comparison.get("sweep", {})
    tables: dict[str, list[OptimizerRow]] = {}
    sections, winners, verdicts = [], [], []
    for problem_runs in data.problems:
        problem = problem_runs.problem
        rows = optimizer_rows(problem_runs)
        tables[problem_runs.name] = rows
        ranked = rank_rows(rows, problem.higher_is_better if problem else False)
        if ranked and ranked[0].final is not None:
            winners.append(ranked[0].optimizer)
        verdict = problem_verdict(problem_runs, rows)
        verdicts.append(verdict)
        trajectories = trajectory_figure(problem_runs, colors) if problem is not None else None
        sweep_plot = None
        if problem is not None and problem_runs.name in sweep:
            sweep_plot = sweep_figure(
                problem_runs.name, sweep[problem_runs.name], colors, problem.metric, problem.higher_is_better
            )
        curves = _image(curves_figure(problem_runs, colors), f"{problem_runs.name} curves")
        # 2-D problems lead with their paths (sweep beside them); learning problems with their curves
        if trajectories is not None:
            figures = [
                _image(trajectories, f"{problem_runs.name} trajectories", half=True),
                _image(sweep_plot, f"{problem_runs.name} sweep", half=True),
                curves,
            ]
        else:
            figures = [curves, _image(sweep_plot, f"{problem_runs.name} sweep", half=True)]
        subtitle = html.escape(f"{problem.kind} · {problem.summary}") if problem else "problem not registered"
        sections.append(
            f"<section class='card' id='{html.escape(problem_runs.name)}'>"
            f"<h2>{html.escape(problem_runs.name)}<small>{subtitle}</small></h2>"
            f"<p class='verdict'>{html.escape(verdict)}</p>"
            f"<div class='figures'>{''.join(figures)}</div>{_table(problem_runs, rows, colors)}</section>"
        )
    comparison = data.comparison
    seeds = comparison.get("seeds")
    grid = comparison.get("lr_grid") or []
    notes = [
        "Curves show the mean over seeds with a min–max band; the training loss of minibatch problems is "
        "a running mean over 1/50 of the recorded steps. Wall time counts training steps only "
        "(evaluation excluded).",
        "Final and best metric: mean ± standard deviation over the seeds that did not diverge; steps and "
        "seconds to target: median over the seeds that reached it (count in brackets).",
        "A run diverges when its loss or parameters become NaN/Inf or |loss| exceeds "
        f"{DIVERGENCE_FACTOR:g} × max(|initial loss|, 1); it stops there and counts as diverged, "
        "not as a crash.",
        "Optimizer µs/step is the time spent inside optimizer.step() only.",
    ]
    if grid:
        notes.insert(
            0,
            (
                f"Learning rates: for each optimizer and problem a sweep over {len(grid)} rates from "
                f"{min(grid):g} to {max(grid):g} (half-decade log grid) on seed {seeds[0] if seeds else 0} "
                f"with {comparison.get('sweep_fraction', SWEEP_FRACTION):g} of the budget; the rate with the "
                "best final metric (diverged rates last) runs on every seed and is the 'lr' column. Other "
                "hyperparameters are each optimizer's defaults."
            ),
        )
    nav = "".join(f"<a href='#{html.escape(p.name)}'>{html.escape(p.name)}</a>" for p in data.problems)
    runs_total = sum(len(runs) for problem in data.problems for runs in problem.runs.values())
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        f"<title>descentlab report</title><style>{_CSS}</style></head><body>"
        "<header><h1>descentlab: optimizer comparison</h1>"
        f"<p>{len(data.problems)} problems · {len(all_optimizers)} optimizers · "
        f"{len(seeds) if seeds else 'stored'} seeds · {runs_total} runs</p></header><main>"
        "<section class='card'><h2>Summary</h2>"
        f"<p class='verdict'>{html.escape(overall_verdict(winners))}</p>"
        f"<ul>{''.join(f'<li>{html.escape(v)}</li>' for v in verdicts)}</ul></section>"
        f"<nav>{nav}</nav>{''.join(sections)}"
        "<section class='card'><h2>How to read this</h2>"
        f"<ul class='notes'>{''.join(f'<li>{html.escape(note)}</li>' for note in notes)}</ul>"
        "<p>Data: <a href='runs.csv'>runs.csv</a> · <a href='records.csv'>records.csv</a> · "
        "<a href='report.json'>report.json</a></p></section></main>"
        f"<footer>descentlab {__version__} · generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        "</footer></body></html>"
    )
    return page, (data, tables)


def write_report(out_dir: str | Path) -> Path:
    """Write ``report.html``, ``runs.csv``, ``records.csv`` and ``report.json`` in ``out_dir``.

    Returns:
        The path of ``report.html``.
    """
    out_dir = Path(out_dir)
    page, (data, tables) = render_page(out_dir)
    write_exports(out_dir, data, tables)
    return write_text_atomic(out_dir / REPORT_NAME, page)
