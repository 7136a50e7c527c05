"""Smoke test of benchmarks/step_speed.py on its --quick workloads, plus checks of its measuring parts."""

from __future__ import annotations

import importlib.util
import inspect
import math
import re
import sys
from pathlib import Path

import pytest
import torch

from descentlab.optim import RuleOptimizer
from descentlab.optim.registry import optimizer_classes, step_protocol

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "step_speed.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("step_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


benchmark = _load_benchmark()


def _tables(report: str) -> list[list[list[str]]]:
    """Each markdown table of ``report`` as rows of cells, header and rule lines left out."""
    tables, current = [], None
    for line in report.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            current.append([cell.strip() for cell in line.strip("|").split("|")])
        else:
            current = None
    return [table[2:] for table in tables]


def _median(cell: str) -> float:
    return float(cell.split(" [")[0])


def test_quick_run_covers_every_variant_with_finite_cells(tmp_path):
    output = tmp_path / "step_speed.md"
    report = benchmark.main(["--quick", "--output", str(output)])
    assert output.read_text() == report
    assert "logical cores" in report and "load average" in report
    steps, overheads, first_steps = _tables(report)
    gradient_classes = [cls for cls in optimizer_classes().values() if step_protocol(cls) == "gradient"]
    expected = {f"{cls.__name__}(variant={v}" for cls in gradient_classes for v in cls.variants[1:]}
    expected |= {cls.__name__ for cls in gradient_classes}
    for workload in ("transformer-tiny", "4-tensors-tiny"):
        described = {row[1] for row in steps if row[0] == workload}
        assert all(any(name == d or d.startswith(name) for d in described) for name in expected)
    for row in steps:
        clean, _, ran = row[3].partition(" / ")
        assert 0 <= int(clean) <= int(ran)
        if int(clean) > 0:  # a loaded machine may leave a row without clean rounds; it must say so
            assert _median(row[5]) > 0 and _median(row[6]) > 0
        name = row[1].split("(")[0]
        options = re.findall(r"(\w+)=", row[1])
        if (
            "variant" not in row[1]
            and hasattr(torch.optim, name)
            and all(key in inspect.signature(getattr(torch.optim, name)).parameters for key in options)
            and name not in benchmark.NO_TORCH_PEER
            and int(clean) > 0
        ):
            assert row[10] in {"for-loop", "foreach", "fused"}, row
            assert row[12] == "-" or _median(row[12]) > 0  # "-": no round with both steps clean
    assert {row[0] for row in overheads} == {"bowl", "digits-mlp"}
    assert len(first_steps) == 1 and _median(first_steps[0][1]) > 0


def test_filters_select_and_unknown_names_are_refused():
    settings = benchmark.parse_arguments(
        ["--quick", "--optimizers", "Lion,adam", "--workload", "4-tensors-tiny"]
    )
    assert [workload.name for workload in settings.workloads] == ["4-tensors-tiny"]
    assert {configuration.name for configuration in settings.configurations} == {"Lion", "Adam"}
    with pytest.raises(ValueError, match="nosuch"):
        benchmark.parse_arguments(["--quick", "--optimizers", "nosuch"])
    with pytest.raises(SystemExit):
        benchmark.parse_arguments(["--quick", "--workload", "nosuch"])


def test_compiled_column_follows_the_chain_and_a_wrappers_base():
    import descentlab.optim as dl

    def compilable(cls, **options):
        return benchmark.Configuration(cls, options).compilable

    assert compilable(dl.Adam) and compilable(dl.Nesterov) and compilable(dl.ScheduleFreeAdamW)
    # Per-tensor reductions (norms, orthogonalisation, factored moments), traced over whole tensors.
    assert compilable(dl.LAMB) and compilable(dl.Muon) and compilable(dl.Adafactor)
    assert compilable(dl.Prodigy)  # group-wide sums: a kernel of the sums, then the update's
    assert not compilable(dl.LineSearchGD) and not compilable(dl.SVRG)  # steps of their own, no chain
    # A wrapper shares its base's param groups, so compiled=True reaches the base's generated kernel.
    assert compilable(dl.Lookahead, base="adam") and compilable(dl.WeightAveraging, base="prodigy")
    assert not compilable(dl.Lookahead, base="svrg") and not compilable(dl.SAM, base="linesearchgd")


def _sample(probes: tuple[float, float], kept_core: bool = True):
    return benchmark.Sample(step=1.0, probes=probes, kept_core=kept_core)


def test_disturbed_steps_are_dropped_and_the_rest_kept():
    quiet = {"ours": _sample((1.0, 1.1)), "torch foreach": _sample((1.1, 1.0))}
    rounds = [dict(quiet) for _ in range(4)]
    rounds.append({"ours": _sample((1.0, 1.4)), "torch foreach": _sample((1.0, 1.0))})  # 1.4 > 1.3 x 1.0
    rounds.append({"ours": _sample((1.0, 1.0), kept_core=False), "torch foreach": _sample((1.0, 1.1))})
    clean = benchmark.clean_rounds(rounds)
    assert clean[:4] == rounds[:4]
    assert set(clean[4]) == {"torch foreach"} and set(clean[5]) == {"torch foreach"}
    summary = benchmark.Rounds(modes=["ours", "torch foreach"], run=6, clean=clean)
    assert summary.count("ours") == 4 and summary.count("torch foreach") == 6 and summary.fewest_clean == 4
    assert summary.fraction("ours").median == pytest.approx(1.05)


def test_spread_is_median_and_quartiles():
    spread = benchmark.Spread.of([5.0, 1.0, 4.0, 2.0, 3.0])
    assert (spread.low, spread.median, spread.high) == (2.0, 3.0, 4.0)
    assert math.isnan(benchmark.Spread.of([]).median)


@pytest.mark.parametrize(
    ("build", "updated"),
    [
        (lambda p: torch.optim.SGD(p, lr=0.1), 0),
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 1),
        (lambda p: torch.optim.Adam(p, lr=0.1), 2),
        (lambda p: torch.optim.Adam(p, lr=0.1, amsgrad=True), 3),
        # On the same gradient again its max keeps exp_inf as it was; it is written every step.
        (lambda p: torch.optim.Adamax(p, lr=0.1), 2),
    ],
)
def test_updated_state_count_matches_torch_state(build, updated):
    param = torch.randn(4, requires_grad=True)
    param.grad = grad = torch.randn(4)
    optimizer = build([param])
    optimizer.step()
    assert benchmark.updated_state_count(optimizer, param) == updated
    assert param.grad is grad  # the benchmark's fixed gradient is back


def test_probe_moves_the_step_bytes_and_leaves_gradients_alone():
    grads = [torch.randn(3, 2), torch.randn(5)]
    before = [grad.clone() for grad in grads]
    probe = benchmark.StreamingProbe(grads, state_count=2)
    probe.run()
    assert all(torch.equal(grad, old) for grad, old in zip(grads, before))
    assert all(torch.allclose(t, benchmark.PROBE_SCALE * g) for t, g in zip(probe.targets, grads))
    assert len(probe.states) == 2 and all(len(state) == len(grads) for state in probe.states)


def test_full_transformer_workload_reaches_the_blocking_path():
    transformer = benchmark.workloads(quick=False)[0]
    assert len(transformer.shapes) == 196
    assert 9.5e6 < transformer.parameter_count < 10.5e6
    assert max(math.prod(shape) for shape in transformer.shapes) > RuleOptimizer.block_numel


def test_overhead_only_run_has_just_the_tiny_model_table(tmp_path):
    output = tmp_path / "overhead.md"
    report = benchmark.main(["--quick", "--overhead-only", "--optimizers", "sgd", "--output", str(output)])
    assert output.read_text() == report and "load average" in report
    (overheads,) = _tables(report)
    assert {row[0] for row in overheads} == {"bowl", "digits-mlp"}
    assert {row[1] for row in overheads} == {"SGD", "SGD(momentum=0.9)", "SGD(variant=ema, momentum=0.9)"}


def test_a_compiled_run_compiles_in_a_fresh_inductor_cache_it_removes_and_says_so(monkeypatch, tmp_path):
    # A warm cache turns the compile column into load times (an earlier run's graphs): cold by default.
    seen = {}

    def run(settings, started, load_at_start):
        folder = Path(benchmark.os.environ["TORCHINDUCTOR_CACHE_DIR"])
        seen["folder"], seen["empty"] = folder, not any(folder.iterdir())
        return "\n".join(benchmark.header(settings, load_at_start, 0.0))

    monkeypatch.setattr(benchmark, "run", run)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    report = benchmark.main(["--quick", "--compiled", "--optimizers", "sgd", "--output", str(tmp_path / "r")])
    assert seen["folder"] != tmp_path and seen["empty"]
    assert not seen["folder"].exists()
    assert "a fresh folder for this run, so every *compile s* is a cold compile" in report
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    warm = benchmark.main(["--quick", "--compiled", "--warm-cache", "--output", str(tmp_path / "r")])
    assert seen["folder"] == tmp_path
    assert "the existing folder (--warm-cache)" in warm
