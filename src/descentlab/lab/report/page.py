"""Render the HTML report page (first cut: tables only)."""

from __future__ import annotations

import html
from pathlib import Path

from descentlab.lab.report.atomic_file import write_text_atomic
from descentlab.lab.report.data import load_report_data


def write_report(out_dir: str | Path) -> Path:
    """Write ``report.html`` in ``out_dir`` from its store and return its path."""
    data = load_report_data(out_dir)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>descentlab report</title></head><body>"]
    for problem in data.problems:
        parts.append(f"<h2>{html.escape(problem.name)}</h2><table><tr><th>optimizer</th><th>final</th></tr>")
        for optimizer, runs in problem.runs.items():
            finals = [run["summary"].get("final_metric") for run in runs]
            parts.append(f"<tr><td>{html.escape(optimizer)}</td><td>{finals}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return write_text_atomic(Path(out_dir) / "report.html", "".join(parts))
