"""Load what a report shows from the store, grouped by problem and optimizer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from descentlab.lab.store import RunStore
from descentlab.problems.base import Problem
from descentlab.problems.registry import get_problem


@dataclass
class ProblemRuns:
    """The runs of one problem: ``runs[optimizer]`` is a list of stored runs, each with ``records``."""

    name: str
    problem: Problem | None
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class ReportData:
    """Everything the report renders."""

    problems: list[ProblemRuns]
    comparison: dict[str, Any]


def load_report_data(out_dir: str | Path) -> ReportData:
    """Read the runs of the last comparison in ``out_dir`` (or every non-sweep run when there is none).

    A problem no longer registered is still reported (tables only: its plots need the problem).
    """
    with RunStore(out_dir) as store:
        comparison = store.get_meta("comparison", {}) or {}
        wanted = set(comparison.get("run_ids", []))
        stored = [run for run in store.runs(purpose=None) if run["purpose"] != "sweep"]
        if wanted:
            stored = [run for run in stored if run["run_id"] in wanted]
        grouped: dict[str, ProblemRuns] = {}
        for run in stored:
            run["records"] = store.records(run["run_id"])
            if run["problem"] not in grouped:
                try:
                    problem = get_problem(run["problem"])
                except ValueError:
                    problem = None
                grouped[run["problem"]] = ProblemRuns(run["problem"], problem)
            grouped[run["problem"]].runs.setdefault(run["optimizer"], []).append(run)
    order = {name: index for index, name in enumerate(comparison.get("problems", []))}
    problems = sorted(grouped.values(), key=lambda item: (order.get(item.name, len(order)), item.name))
    return ReportData(problems=problems, comparison=comparison)
