"""The report's data files: ``runs.csv`` (one row per run), ``records.csv`` (one row per recorded step)
and ``report.json`` (each part's settings, per-problem tables and run summaries).

Every row names its configuration (id and label), so a number can always be traced to what produced it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from descentlab.atomic import write_text as write_text_atomic
from descentlab.lab.records import SCALAR_COLUMNS, RunSummary
from descentlab.lab.report.data import ReportData
from descentlab.lab.report.profiles import COSTS, GroupProfiles

SUMMARY_KEYS = tuple(f.name for f in fields(RunSummary) if f.name != "extra")


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN/Inf: they become ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


def _csv_text(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _runs(data: ReportData) -> list[tuple[str, Any, dict[str, Any]]]:
    """``(part title, configuration, run)`` for every run, each run once."""
    seen, result = set(), []
    for section in data.sections:
        for problem in section.problems:
            for configuration in problem.configurations:
                for run in configuration.runs:
                    if run["run_id"] not in seen:
                        seen.add(run["run_id"])
                        result.append((section.title, configuration, run))
    return result


def profile_document(profiles: GroupProfiles) -> dict[str, Any]:
    """One profile group as JSON-ready data: targets, per-seed times to target (``inf``: ``null``) and
    the scores with their intervals."""
    times = [
        {
            "problem": problem,
            "target": kind,
            "solver": solver,
            "label": entry.label,
            "reached": entry.reached,
            "seeds": entry.seeds,
            "per_seed": entry.per_seed,
            **{cost: entry.cost(cost) for cost in COSTS},
        }
        for (problem, kind), by_solver in profiles.times.items()
        for solver, entry in by_solver.items()
    ]
    scores = [
        {
            "target": kind,
            "cost": cost,
            "solver": solver,
            "score": float(estimate.score[index]),
            "low": float(estimate.score_low[index]),
            "high": float(estimate.score_high[index]),
        }
        for (kind, cost), estimate in profiles.profiles.items()
        for index, solver in enumerate(profiles.solvers)
    ]
    return {
        "title": profiles.group.title,
        "problems": [problem.name for problem in profiles.group.problems],
        "skipped": profiles.skipped,
        "targets": {name: asdict(targets) for name, targets in profiles.targets.items()},
        "time_to_target": times,
        "scores": scores,
    }


def write_exports(
    out_dir: Path,
    data: ReportData,
    tables: dict[str, dict[str, list]],
    profiles: list[GroupProfiles] | None = None,
) -> list[Path]:
    """Write the three data files atomically and return their paths (``profiles`` go to the JSON)."""
    runs = _runs(data)
    run_rows = [
        [
            run["run_id"],
            configuration.configuration_id,
            configuration.label,
            run["problem"],
            run["optimizer"],
            run["seed"],
            run["spec"].hyperparameter_dict.get("lr"),
            run["outcome"],
            *(getattr(run["summary"], key) for key in SUMMARY_KEYS),
            json.dumps(run["spec"].to_dict(), sort_keys=True),
        ]
        for _, configuration, run in runs
    ]
    metric_keys = sorted({key for *_, run in runs for r in run["records"] if r.metrics for key in r.metrics})
    record_rows = [
        [
            run["run_id"],
            configuration.configuration_id,
            run["problem"],
            run["optimizer"],
            run["seed"],
            *(getattr(r, key) for key in SCALAR_COLUMNS),
            r.effective_step_size,
            *((r.metrics or {}).get(key) for key in metric_keys),
            *((r.train_metrics or {}).get(key) for key in metric_keys),
        ]
        for _, configuration, run in runs
        for r in run["records"]
    ]
    document = {
        "parts": [
            {
                "title": section.title,
                "kind": section.kind,
                "settings": {k: v for k, v in section.settings.items() if k != "run_ids"},
                "problems": {
                    name: [asdict(row) for row in rows]
                    for name, rows in tables.get(section.title, {}).items()
                },
            }
            for section in data.sections
        ],
        "profiles": [profile_document(group) for group in profiles or []],
        "runs": [
            {
                "run_id": run["run_id"],
                "configuration_id": configuration.configuration_id,
                "label": configuration.label,
                "spec": run["spec"].to_dict(),
                "outcome": run["outcome"],
                "summary": run["summary"].to_dict(),
            }
            for _, configuration, run in runs
        ],
    }
    header = ["run_id", "configuration_id", "label", "problem", "optimizer", "seed", "lr", "outcome"]
    return [
        write_text_atomic(out_dir / "runs.csv", _csv_text([*header, *SUMMARY_KEYS, "spec"], run_rows)),
        write_text_atomic(
            out_dir / "records.csv",
            _csv_text(
                [
                    "run_id",
                    "configuration_id",
                    "problem",
                    "optimizer",
                    "seed",
                    *SCALAR_COLUMNS,
                    "effective_step_size",
                    *(f"val_{k}" for k in metric_keys),
                    *(f"train_{k}" for k in metric_keys),
                ],
                record_rows,
            ),
        ),
        write_text_atomic(
            out_dir / "report.json",
            json.dumps(_finite_or_none(document), indent=1, allow_nan=False, default=str),
        ),
    ]
