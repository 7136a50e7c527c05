"""The report's data files: ``runs.csv`` (one row per run), ``records.csv`` (one row per recorded step)
and ``report.json`` (comparison settings, per-problem tables and run summaries)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from descentlab.lab.report.atomic_file import write_text_atomic
from descentlab.lab.report.data import ReportData
from descentlab.lab.report.statistics import OptimizerRow

SUMMARY_KEYS = (
    "steps",
    "initial_loss",
    "final_loss",
    "final_metric",
    "best_metric",
    "steps_to_target",
    "seconds_to_target",
    "seconds",
    "optimizer_seconds_per_step",
)
RECORD_KEYS = ("step", "loss", "lr", "grad_norm", "update_norm", "seconds", "optimizer_seconds", "x", "y")


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


def write_exports(out_dir: Path, data: ReportData, tables: dict[str, list[OptimizerRow]]) -> list[Path]:
    """Write the three data files atomically and return their paths."""
    runs = [run for problem in data.problems for runs in problem.runs.values() for run in runs]
    run_rows = [
        [
            run["run_id"],
            run["problem"],
            run["optimizer"],
            run["seed"],
            run["spec"].hyperparameter_dict.get("lr"),
            run["outcome"],
            *(run["summary"].get(key) for key in SUMMARY_KEYS),
            json.dumps(run["spec"].to_dict(), sort_keys=True),
        ]
        for run in runs
    ]
    metric_keys = sorted(
        {key for run in runs for r in run["records"] if r["metrics"] for key in r["metrics"]}
    )
    record_rows = [
        [
            run["run_id"],
            run["problem"],
            run["optimizer"],
            run["seed"],
            *(r[key] for key in RECORD_KEYS),
            *((r["metrics"] or {}).get(key) for key in metric_keys),
        ]
        for run in runs
        for r in run["records"]
    ]
    document = {
        "comparison": {key: value for key, value in data.comparison.items() if key != "run_ids"},
        "problems": {name: [asdict(row) for row in rows] for name, rows in tables.items()},
        "runs": [
            {
                "run_id": run["run_id"],
                "spec": run["spec"].to_dict(),
                "outcome": run["outcome"],
                "summary": run["summary"],
            }
            for run in runs
        ],
    }
    return [
        write_text_atomic(
            out_dir / "runs.csv",
            _csv_text(
                ["run_id", "problem", "optimizer", "seed", "lr", "outcome", *SUMMARY_KEYS, "spec"], run_rows
            ),
        ),
        write_text_atomic(
            out_dir / "records.csv",
            _csv_text(
                ["run_id", "problem", "optimizer", "seed", *RECORD_KEYS, *(f"val_{k}" for k in metric_keys)],
                record_rows,
            ),
        ),
        write_text_atomic(
            out_dir / "report.json",
            json.dumps(_finite_or_none(document), indent=1, allow_nan=False, default=str),
        ),
    ]
