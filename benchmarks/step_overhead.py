"""Per-step Python overhead on the lab's tiny models: descentlab against torch.optim, and against a baseline.

Run from the repository root::

    PYTHONPATH=src python benchmarks/step_overhead.py      # writes benchmarks/results/step_overhead.md
    PYTHONPATH=src python benchmarks/step_overhead.py --baseline /tmp/before/src --optimizers adam,sgd

On the ``bowl`` point (one 2-element parameter) and the ``digits-mlp`` network (see
``step_speed.tiny_models``) a step moves a few hundred bytes, so its time is the Python and dispatch work
around the kernels. Every torch-equivalent configuration of ``benchmarks/step_speed.py`` is measured two
ways:

- *calls per step*: the Python function calls and the calls of C functions from Python that
  ``sys.setprofile`` sees during one step (after warm-up steps), a count that load cannot disturb;
- *microseconds per step*: the calling thread's CPU time (``time.thread_time``) per step, in interleaved
  rounds (100 steps of each mode in turn, order rotated every round); median and interquartile range,
  ratios paired round by round. Tensors this small run on the calling thread, so its CPU time is the
  step's work, and time spent descheduled by other jobs on a shared machine is left out (wall-clock
  rounds that keep their core, as ``step_speed.py`` takes them, are rare there under load).

torch runs with one intra-op thread (``--threads``): a parallel kernel makes the calling thread wait,
spinning, for a worker that another job may hold off its core for a scheduler tick (a step of the
digits MLP then costs 4 ms of CPU time, in every mode alike), and tensors this small gain nothing.

``--baseline SRC`` imports a second copy of descentlab from the source folder ``SRC`` (e.g. an older commit
unpacked with ``git archive``) under its own modules, so the "before" engine runs interleaved with the
current one in the same process and conditions. The copy is not quite a neutral reference: a baseline of
the very same commit read *ours / before* 1.00-1.05 (2026-12-03, sgd and adam rows), so only a ratio
outside that band says the engine changed.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from descentlab.atomic import write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_speed  # the sibling script: modes, rounds, statistics

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "step_overhead.md"
BASELINE = "ours before"
WARMUP_STEPS = 3  # the first steps create state; the count is taken on a later one


def load_baseline(source: Path) -> ModuleType:
    """``descentlab.optim`` imported from ``source``, kept apart from the current package's modules.

    The current modules are set aside while the baseline imports (so its absolute imports resolve to its
    own files), then the baseline's are removed from ``sys.modules`` and the current ones restored; its
    objects keep their own module globals.
    """

    def ours() -> dict[str, ModuleType]:
        return {name: module for name, module in sys.modules.items() if name.split(".")[0] == "descentlab"}

    current = ours()
    for name in current:
        del sys.modules[name]
    sys.path.insert(0, str(source))
    try:
        baseline = importlib.import_module("descentlab.optim")
    finally:
        sys.path.remove(str(source))
        for name in ours():
            del sys.modules[name]
        sys.modules.update(current)
    return baseline


def calls_per_step(optimizer: torch.optim.Optimizer) -> tuple[int, int]:
    """Python function calls and C-function calls during one ``step()`` (after :data:`WARMUP_STEPS`)."""
    for _ in range(WARMUP_STEPS):
        optimizer.step()
    counts = {"call": 0, "c_call": 0}

    def count(frame: object, event: str, argument: object) -> None:
        if event in counts:
            counts[event] += 1

    sys.setprofile(count)
    try:
        optimizer.step()
    finally:
        sys.setprofile(None)
    return counts["call"], counts["c_call"]


@dataclass
class Row:
    """One configuration on one tiny model: calls per step and timed rounds of every mode."""

    model: str
    configuration: step_speed.Configuration
    calls: dict[str, tuple[int, int]]
    rounds: step_speed.Rounds
    load: float


def modes(configuration: step_speed.Configuration, baseline: ModuleType | None) -> list[step_speed.Mode]:
    """Ours, the baseline's class of the same name (if any), torch's for-loop, foreach and fused."""
    found = step_speed.modes_of(configuration)
    if baseline is not None:
        before = step_speed.Configuration(getattr(baseline, configuration.name), configuration.options)
        found.insert(1, step_speed.Mode(BASELINE, before.build))
    return found


def measure(
    model: str,
    shapes: list[tuple[int, ...]],
    configuration: step_speed.Configuration,
    baseline: ModuleType | None,
    settings: step_speed.Settings,
) -> Row:
    """Calls per step of every mode, then interleaved timing rounds of all of them."""
    built: dict[str, Callable[[], torch.optim.Optimizer]] = {
        mode.label: (lambda mode=mode: mode.build(step_speed.parameters_with_gradients(shapes)))
        for mode in modes(configuration, baseline)
    }
    calls = {label: calls_per_step(build()) for label, build in built.items()}
    optimizers = {label: build() for label, build in built.items()}
    rounds = step_speed.collect_rounds(
        lambda shift: cpu_round(optimizers, settings.overhead_steps, shift),
        settings.overhead_rounds,
        settings.max_rounds,
    )
    return Row(model, configuration, calls, rounds, os.getloadavg()[0])


def cpu_round(optimizers: dict[str, torch.optim.Optimizer], steps: int, shift: int) -> step_speed.Round:
    """``steps`` steps of each mode in turn, starting ``shift`` places in: CPU seconds per step."""
    labels = list(optimizers)
    labels = labels[shift % len(labels) :] + labels[: shift % len(labels)]
    samples = {}
    for label in labels:
        step, start = optimizers[label].step, time.thread_time()
        for _ in range(steps):
            step()
        # No probes and nothing to drop: every sample is clean (see the module docstring).
        samples[label] = step_speed.Sample((time.thread_time() - start) / steps, (0.0, 0.0), True)
    return samples


def table(rows: list[Row], baseline: bool) -> list[str]:
    """Calls and microseconds per step by mode, and the paired ratios."""
    labels = ["ours", *([BASELINE] if baseline else []), "torch for-loop", "torch foreach"]
    head = ["model", "optimizer"]
    head += [f"{label} calls" for label in labels]
    head += [f"{label} us" for label in labels]
    head += ["ours / for-loop", "ours / foreach", *(["ours / before"] if baseline else []), "load"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in rows:
        calls = [row.calls.get(label) for label in labels]
        cells = [row.model, row.configuration.describe()]
        cells += [f"{count[0]} + {count[1]}" if count else "-" for count in calls]
        cells += [row.rounds.step(label).format(1e6) for label in labels]
        cells += [row.rounds.ratio("torch for-loop").format(), row.rounds.ratio("torch foreach").format()]
        if baseline:
            cells.append(row.rounds.ratio(BASELINE).format())
        cells.append(f"{row.load:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def parse_arguments(argv: Sequence[str] | None) -> tuple[argparse.Namespace, step_speed.Settings]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", type=Path, default=None, help="source folder of a descentlab to compare"
    )
    parser.add_argument(
        "--baseline-label", default=None, help="what the baseline is, for the report (e.g. a commit)"
    )
    parser.add_argument("--optimizers", default="", help="comma-separated optimizer names (default: all)")
    parser.add_argument("--quick", action="store_true", help="few rounds and steps (smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help=f"markdown file ({RESULTS_PATH})")
    arguments = parser.parse_args(argv)
    passed = ["--optimizers", arguments.optimizers] if arguments.optimizers else []
    passed += ["--threads", str(arguments.threads), *(["--quick"] if arguments.quick else [])]
    settings = step_speed.parse_arguments(passed)
    return arguments, settings


def main(argv: Sequence[str] | None = None) -> str:
    """Measure every torch-equivalent configuration on both tiny models; print and write the report."""
    started, load_at_start = time.perf_counter(), os.getloadavg()[0]
    arguments, settings = parse_arguments(argv)
    torch.set_num_threads(settings.threads)
    baseline = load_baseline(arguments.baseline.resolve()) if arguments.baseline else None
    configurations = [c for c in settings.configurations if c.torch_class is not None]
    rows = []
    for model, shapes in step_speed.tiny_models():
        for configuration in configurations:
            rows.append(measure(model, shapes, configuration, baseline, settings))
            print(f"  {model:10s} {configuration.describe():28s} load {rows[-1].load:.2f}", flush=True)
    lines = [
        "# Per-step overhead on the lab's tiny models: descentlab vs torch.optim",
        "",
        f"Machine: {step_speed.machine_description()}.",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/step_overhead.py"
        f"{' --baseline SRC' if baseline else ''}` in {(time.perf_counter() - started) / 60:.1f} min; "
        f"1-minute load average {load_at_start:.2f} at the start and {os.getloadavg()[0]:.2f} at the end "
        "(2 cores shared with other jobs).",
        "",
        f"*calls*: Python function calls + C-function calls in one step (`sys.setprofile`, after "
        f"{WARMUP_STEPS} steps). *us*: CPU microseconds of the calling thread per step, "
        f"{settings.overhead_steps} steps per sample, {settings.overhead_rounds} samples per mode, modes "
        "interleaved in rotated order; median [IQR]; ratios paired round by round (see the script's "
        "docstring).",
        *(
            [f"*{BASELINE}*: descentlab from {arguments.baseline_label or arguments.baseline}, interleaved."]
            if baseline
            else []
        ),
        "",
        *table(rows, baseline is not None),
    ]
    report = "\n".join(lines) + "\n"
    print(report)
    write_text(arguments.output, report, parents=True)
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
