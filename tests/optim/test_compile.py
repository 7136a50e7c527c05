"""``torch.compile(optimizer.step)``: one graph, no graph break in the step, no recompile under a scheduler.

Each case compiles our optimizer's step with a tensor ``lr`` that ``ExponentialLR`` rewrites after
every step (torch's "LR scheduler with compiled optimizer" recipe), counts what dynamo did through its
own ``graph_breaks`` / ``recompiles`` logs (benchmarks/compile_counts.py), and compares the parameters
after the last step with torch.optim's eager step and with ours (float rounding apart).

The default cases use the ``aot_eager`` backend: dynamo and AOTAutograd trace exactly as for inductor,
so breaks and recompiles are the same, without inductor's C++ build (a few seconds per case instead of
10-50 s). The inductor cases, and most rows of descentlab's own classes, run with
``DESCENTLAB_SLOW_TESTS=1``; benchmarks/results/compile_counts.md lists every row, with the reasons
for those that miss the target (Prodigy, Schedule-Free, Lookahead, WeightAveraging).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import warnings
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "compile_counts.py"
STEPS = 6  # five scheduler updates of the tensor lr between compiled steps
TOLERANCES = {torch.float32: {"rtol": 1e-6, "atol": 1e-7}, torch.float64: {"rtol": 1e-12, "atol": 1e-13}}
# torch.optim.SGD has the same one: its momentum buffer is created from the first gradient, inside the
# first compiled step, so the second step's guards see a tensor where the first saw None.
# SAM's first step starts without gradients (its closure creates them), so the second one recompiles too.
RECOMPILES_AT_SECOND_STEP = {"SGD": 1, "SAM": 1}

slow = pytest.mark.skipif(
    os.environ.get("DESCENTLAB_SLOW_TESTS") != "1",
    reason="compiles with inductor (10-50 s each); set DESCENTLAB_SLOW_TESTS=1 to run",
)
needs_compiler = pytest.mark.skipif(shutil.which("g++") is None, reason="inductor's CPU backend needs g++")


def _load_counter():
    spec = importlib.util.spec_from_file_location("compile_counts", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


counter = _load_counter()


@pytest.mark.parametrize(
    ("name", "dtype", "backend"),
    [
        ("Adam", torch.float32, "aot_eager"),
        ("SGD", torch.float32, "aot_eager"),  # momentum 0.9 (benchmarks/compile_counts.py)
        ("NAdam", torch.float64, "aot_eager"),
        # descentlab's own classes and variants (rows of benchmarks/compile_counts.py; eager: ours only).
        ("Nesterov", torch.float64, "aot_eager"),  # float64 look-ahead offsets kept on the graph
        ("RMSprop-graves", torch.float32, "aot_eager"),  # lr inside the momentum buffer
        pytest.param("Adadelta-zeiler", torch.float64, "aot_eager", marks=slow),
        pytest.param("AdamW-paper", torch.float64, "aot_eager", marks=slow),  # lr / initial_lr multiplier
        pytest.param("Lion", torch.float32, "aot_eager", marks=slow),
        pytest.param("RMSprop", torch.float64, "aot_eager", marks=slow),
        # SWATS in both phases (a torch.where switch), SVRG's two closure evaluations.
        ("SWATS-switch", torch.float64, "aot_eager"),
        ("SVRG", torch.float64, "aot_eager"),
        pytest.param("SVRG-II", torch.float64, "aot_eager", marks=slow),  # option II's candidate select
        pytest.param("SWATS", torch.float32, "aot_eager", marks=slow),
        pytest.param("SWATS-per-tensor-switch", torch.float64, "aot_eager", marks=slow),
        # issue 13's algorithms and wrappers that compile without breaks (the table lists the others).
        ("LAMB", torch.float32, "aot_eager"),
        pytest.param("LARS", torch.float64, "aot_eager", marks=slow),
        pytest.param("Adafactor", torch.float32, "aot_eager", marks=slow),
        pytest.param("Adafactor-beta1", torch.float64, "aot_eager", marks=slow),
        pytest.param("Muon", torch.float32, "aot_eager", marks=slow),
        pytest.param("SAM", torch.float64, "aot_eager", marks=slow),  # over Adam, two closure calls
        pytest.param("Adam", torch.float32, "inductor", marks=[slow, needs_compiler]),
        pytest.param("NAdam", torch.float32, "inductor", marks=[slow, needs_compiler]),
    ],
)
def test_compiled_step_has_no_breaks_no_recompiles_and_eager_results(name, dtype, backend):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = counter.measure(name, "ours", backend, STEPS, dtype)
    # dynamo warns (once per process) when it traces through a cache wrapper such as functools.cache.
    assert not [str(w.message) for w in caught if "Dynamo detected" in str(w.message)]
    assert compiled.breaks_in_step == []
    assert compiled.recompiles == RECOMPILES_AT_SECOND_STEP.get(name, 0)
    assert sum(compiled.graphs_per_step[2:]) == 0, compiled.graphs_per_step
    for reference in ("torch", "ours") if counter.has_torch_row(name) else ("ours",):
        eager = counter.measure(name, reference, None, STEPS, dtype)
        for got, expected in zip(compiled.parameters, eager.parameters, strict=True):
            torch.testing.assert_close(got, expected, **TOLERANCES[dtype])


def test_counter_sees_a_graph_break_and_a_recompile():
    # The counts above are only worth something if a break and a recompile would be seen.
    def step_with_host_reads(optimizer):
        group = optimizer.param_groups[0]
        lr = float(group["lr"].item())  # read on the host: a graph break
        calls = group["calls"]  # a Python int that the guards pin: a recompile when it changes
        for param in group["params"]:
            param.data.add_(param.grad, alpha=-lr / calls)

    torch._dynamo.reset()
    model, inputs = counter.make_problem()
    optimizer = torch.optim.SGD(model.parameters(), lr=torch.tensor(0.01))
    compiled = torch.compile(step_with_host_reads, backend="eager")
    with counter.dynamo_records() as records:
        for index in range(3):
            counter.fill_gradients(model, inputs, index)
            optimizer.param_groups[0]["calls"] = index + 1
            compiled(optimizer)
    assert any("test_compile.py" in where for where in records.breaks), records.breaks
    assert records.recompiles >= 1


@pytest.mark.parametrize("name", ["SWATS-switch", "SWATS-per-tensor-switch"])
def test_swats_rows_switch_before_the_last_compiled_step(name):
    # Eager: the rows above exercise SWATS's SGD phase only if the switch comes before the last step.
    model, inputs = counter.make_problem(dtype=torch.float64)
    optimizer = counter.make_optimizer(name, "ours", model.parameters())
    for index in range(STEPS - 1):
        counter.run_step(optimizer, optimizer.step, model, inputs, index)
    (switched,) = optimizer.switch_steps()
    steps = list(switched.values()) if isinstance(switched, dict) else [switched]
    assert any(step is not None for step in steps), steps


@pytest.mark.parametrize("name", ["ScheduleFreeSGD", pytest.param("ScheduleFreeAdamW", marks=slow)])
def test_compiled_schedule_free_falls_back_to_the_eager_step_and_its_result(name):
    # Its group state advances on the host; compiled frames gave parameters 2-4% off before the fallback.
    compiled = counter.measure(name, "ours", "aot_eager", STEPS, torch.float64)
    assert len(compiled.breaks_in_step) == 1 and "schedule_free.py" in compiled.breaks_in_step[0]
    eager = counter.measure(name, "ours", None, STEPS, torch.float64)
    for got, expected in zip(compiled.parameters, eager.parameters, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
