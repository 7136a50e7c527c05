"""Smoke test of benchmarks/step_speed.py on its --quick workloads (a few seconds)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import torch

from descentlab.optim.registry import optimizer_classes, step_protocol

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "step_speed.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("step_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


def _rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_quick_run_has_a_row_per_optimizer_and_finite_ratios(tmp_path):
    output = tmp_path / "step_speed.md"
    table = _load_benchmark().main(["--quick", "--repeats", "2", "--warmup", "1", "--output", str(output)])
    assert output.read_text() == table
    assert "logical cores" in table and "triad" in table
    rows = _rows(table)
    workloads = {row[0] for row in rows}
    assert len(workloads) == 2
    names = {cls.__name__ for cls in optimizer_classes().values() if step_protocol(cls) == "gradient"}
    for workload in workloads:
        assert names <= {row[1].split("(")[0] for row in rows if row[0] == workload}
    for row in rows:
        ours_ms, bandwidth_fraction = float(row[3]), float(row[10])
        assert math.isfinite(ours_ms) and ours_ms > 0
        assert math.isfinite(bandwidth_fraction) and bandwidth_fraction > 0
        name = row[1].split("(")[0]
        if hasattr(torch.optim, name):  # torch.optim has this class: both ratios must be finite numbers
            for cell in (row[7], row[8]):
                assert math.isfinite(float(cell)) and float(cell) > 0
        else:
            assert row[7] == "-"


def test_only_selects_and_rejects_unknown_names(tmp_path):
    benchmark = _load_benchmark()
    table = benchmark.main(
        ["--quick", "--only", "lion", "--repeats", "1", "--output", str(tmp_path / "t.md")]
    )
    assert {row[1] for row in _rows(table)} == {"Lion"}
    try:
        benchmark.main(["--quick", "--only", "nosuch", "--output", str(tmp_path / "u.md")])
    except ValueError as error:
        assert "nosuch" in str(error)
    else:
        raise AssertionError("an unknown --only name must raise")
