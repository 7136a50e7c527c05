"""Smoke test of benchmarks/bucket_plan.py: its two modes really differ in planning, and a quick run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import descentlab.optim as dl
from descentlab.optim import _engine

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bucket_plan.py"


def _load_benchmark():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("bucket_plan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


benchmark = _load_benchmark()


def test_the_planned_mode_plans_and_the_other_does_not_and_the_threshold_is_restored():
    threshold = _engine._PLANNED_GROUP_SIZE
    plans = {}
    for label, limit in (("planned", 1), ("anew", benchmark.NEVER)):
        params = benchmark.step_speed.parameters_with_gradients([(2,)] * 2)
        stepper = benchmark.Stepper(dl.Adam(params, lr=0.1), limit)
        for _ in range(2):
            stepper.step()
        plans[label] = stepper.optimizer._bucket_plans
    assert len(plans["planned"]) == 1 and not plans["anew"]
    assert threshold == _engine._PLANNED_GROUP_SIZE


def test_quick_run_writes_its_table(tmp_path):
    output = tmp_path / "plan.md"
    report = benchmark.main(["--quick", "--sizes", "1,2", "--output", str(output)])
    rows = [line.split("|")[1:-1] for line in report.splitlines() if line.startswith("| Adam |")]
    assert output.read_text() == report and [row[1].strip() for row in rows] == ["1", "2"]
    assert all(float(row[4].split()[0]) > 0 for row in rows)
