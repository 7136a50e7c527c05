"""Where reusing a group's bucket plan pays: the eager step with and without it, by group size.

Run from the repository root::

    PYTHONPATH=src python benchmarks/bucket_plan.py      # writes benchmarks/results/bucket_plan.md

From a group's second eager step the engine may rebuild its buckets from a :class:`BucketPlan` (see
``descentlab/optim/_bucket.py``) instead of reading every parameter's state again. Checking a plan has a
fixed cost; bucketing anew costs per parameter. For each optimizer and number of parameters (2 elements
each, so a step is its Python and dispatch work), two optimizers step in interleaved rounds: one with
every group planned, one with none (the engine's ``_PLANNED_GROUP_SIZE`` set around each step). Times
are the calling thread's CPU microseconds per step (``step_overhead.cpu_round``), median [IQR], and the
ratio planned / anew is paired round by round. The engine plans groups from the size where it stops
costing more.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

import descentlab.optim as dl
from descentlab.atomic import write_text
from descentlab.optim import _engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
import step_overhead  # the sibling scripts: CPU-time rounds, statistics, machine line
import step_speed

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "bucket_plan.md"
SIZES = (1, 4, 8, 16, 32, 64, 196)
OPTIMIZERS = {
    "Adam": lambda params: dl.Adam(params, lr=1e-3),
    "SGD": lambda params: dl.SGD(params, lr=1e-3),
    "SGD(momentum=0.9)": lambda params: dl.SGD(params, lr=1e-3, momentum=0.9),
}
NEVER = 1 << 62


class Stepper:
    """An optimizer whose ``step`` runs with the engine's plan threshold set to ``threshold``."""

    def __init__(self, optimizer: torch.optim.Optimizer, threshold: int) -> None:
        self.optimizer, self.threshold = optimizer, threshold

    def step(self) -> None:
        saved, _engine._PLANNED_GROUP_SIZE = _engine._PLANNED_GROUP_SIZE, self.threshold
        try:
            self.optimizer.step()
        finally:
            _engine._PLANNED_GROUP_SIZE = saved


def measure(name: str, size: int, steps: int, rounds: int) -> step_speed.Rounds:
    """Interleaved CPU-time rounds of the planned and the unplanned optimizer on ``size`` parameters."""
    steppers = {}
    for label, threshold in (("planned", 1), ("anew", NEVER)):
        params = step_speed.parameters_with_gradients([(2,)] * size)
        stepper = Stepper(OPTIMIZERS[name](params), threshold)
        for _ in range(3):  # state created, plan built
            stepper.step()
        steppers[label] = stepper
    return step_speed.collect_rounds(
        lambda shift: step_overhead.cpu_round(steppers, steps, shift), rounds, 4 * rounds
    )


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds and steps (smoke test)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated group sizes")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help=f"markdown file ({RESULTS_PATH})")
    arguments = parser.parse_args(argv)
    steps, rounds = (5, 3) if arguments.quick else (200, 15)
    torch.set_num_threads(1)  # tensors this small gain nothing from workers (see step_overhead.py)
    started, load = time.perf_counter(), os.getloadavg()[0]
    lines = [
        "| optimizer | parameters | planned us | anew us | planned / anew |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in OPTIMIZERS:
        for size in map(int, arguments.sizes.split(",")):
            result = measure(name, size, steps, rounds)
            planned, anew = result.step("planned").format(1e6), result.step("anew").format(1e6)
            ratio = result.ratio("anew", mode="planned").format()
            lines.append(f"| {name} | {size} | {planned} | {anew} | {ratio} |")
            print(lines[-1], flush=True)
    report = "\n".join(
        [
            "# The bucket plan by group size: the eager step with and without it",
            "",
            f"Machine: {step_speed.machine_description()}.",
            f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/bucket_plan.py"
            f"{' --quick' if arguments.quick else ''}` in {(time.perf_counter() - started) / 60:.1f} min; "
            f"1-minute load average {load:.2f} at the start and {os.getloadavg()[0]:.2f} at the end.",
            "",
            f"CPU microseconds of the calling thread per step, {steps} steps per sample, {rounds} or more "
            "samples per mode, interleaved; median [IQR]; the ratio paired round by round. Each parameter "
            f"has 2 elements. The engine plans groups of {_engine._PLANNED_GROUP_SIZE} parameters or more.",
            "",
            *lines,
            "",
        ]
    )
    write_text(arguments.output, report)
    return report


if __name__ == "__main__":
    main()
