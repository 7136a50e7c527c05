"""Smoke test of benchmarks/step_overhead.py: call counts, CPU-time rounds and a baseline import."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "step_overhead.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("step_overhead", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


benchmark = _load_benchmark()


def test_calls_per_step_counts_what_a_step_calls():
    param = torch.zeros(2, requires_grad=True)
    param.grad = torch.ones(2)
    python, c = benchmark.calls_per_step(torch.optim.SGD([param], lr=0.1, foreach=True))
    assert python > 0 and c > 0


def test_quick_run_with_this_tree_as_baseline(tmp_path):
    output = tmp_path / "overhead.md"
    source = Path(__file__).resolve().parents[2] / "src"
    current = sys.modules["descentlab.optim"]
    report = benchmark.main(
        ["--quick", "--optimizers", "sgd", "--baseline", str(source), "--output", str(output)]
    )
    assert output.read_text() == report and "load average" in report
    rows = [line.split("|")[1:-1] for line in report.splitlines() if line.startswith("| bowl")]
    assert [row[1].strip() for row in rows] == ["SGD", "SGD(momentum=0.9)"]
    assert all(float(row[6].split(" [")[0]) > 0 and float(row[7].split(" [")[0]) > 0 for row in rows)
    assert sys.modules["descentlab.optim"] is current  # the baseline's modules were set apart again
