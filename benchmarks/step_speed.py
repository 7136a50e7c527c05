"""Step time of every descentlab optimizer against torch.optim's for-loop, foreach and fused modes.

Run from the repository root::

    PYTHONPATH=src python benchmarks/step_speed.py            # full run -> benchmarks/results/step_speed.md
    PYTHONPATH=src python benchmarks/step_speed.py --quick    # seconds-long smoke run
    PYTHONPATH=src python benchmarks/step_speed.py --only adam,sgd --repeats 11

Method. Optimizers are discovered with :func:`descentlab.optim.registry.optimizer_classes` (new ones are
picked up automatically) and paired with the ``torch.optim`` class of the same name where one exists.
For each optimizer configuration and workload, every mode (ours, torch for-loop ``foreach=False``, torch
``foreach=True``, torch ``fused=True`` where torch accepts it on this device) gets its own optimizer
over the *same* parameter and gradient tensors, so only optimizer state differs. Steps are timed
interleaved: each repetition times one step of every mode, in an order rotated from repetition to
repetition so drift and cache warmth are shared evenly; after warm-up steps the median over the
repetitions is reported.

Bandwidth bound. ``copy`` (``b <- a``, 8 bytes per element), ``triad`` (``a <- b + s c``, 12 bytes)
and an in-place ``axpy`` (``a <- a + s b``, 12 bytes) are measured with torch on tensors far larger than
the caches (best of several runs, the STREAM convention). copy and triad write to a separate array and
so pay a hidden write-allocate read that the in-place optimizer kernels avoid; the bound therefore uses
the fastest of the three. An optimizer step must at least read the parameter, its gradient and each
parameter-shaped state tensor once and write the parameter and each state tensor once, so its minimal
traffic is ``(3 + 2k) * 4`` bytes per fp32 parameter for ``k`` state tensors (counted from the state the
optimizer actually creates): SGD 12, SGD with momentum / Momentum / Nesterov / Lion / Adagrad / RMSprop
20, Adam-family / Adadelta / NormalizedGD 28, Adam with amsgrad 36. The bound is
``bytes_per_param * n_params / bandwidth``; the table shows ``bound / measured`` (1.0 = at the memory
bandwidth limit). The ~10M workload moves 130-300 MB per step, part of which can stay in a large
last-level cache, so values above 1 are possible there.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from descentlab.optim.registry import optimizer_classes, step_protocol

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "step_speed.md"
FLOAT32_BYTES = 4

# Extra configurations beyond each class's defaults: plain SGD moves no state, so its momentum form is
# what most training runs time.
EXTRA_CONFIGURATIONS: dict[str, list[dict]] = {"SGD": [{"momentum": 0.9}]}
LEARNING_RATE = 1e-4  # small, so repeated steps on fixed gradients keep the parameters finite


@dataclass
class Workload:
    """Named parameter shapes."""

    name: str
    shapes: list[tuple[int, ...]]

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)


def transformer_shapes(width: int, layers: int, vocabulary: int, context: int) -> list[tuple[int, ...]]:
    """Parameter shapes of a GPT-style transformer: embeddings, attention/MLP matrices, norms, biases."""
    shapes: list[tuple[int, ...]] = [(vocabulary, width), (context, width)]
    for _ in range(layers):
        shapes += [(width,), (width,)]  # pre-attention layer norm
        shapes += [(3 * width, width), (3 * width,), (width, width), (width,)]  # attention
        shapes += [(width,), (width,)]  # pre-MLP layer norm
        shapes += [(4 * width, width), (4 * width,), (width, 4 * width), (width,)]  # MLP
    return [*shapes, (width,), (width,)]  # final layer norm


def workloads(quick: bool) -> list[Workload]:
    """(a) ~200 transformer-shaped tensors, ~10M params; (b) 4 large tensors, ~100M params (or tiny)."""
    if quick:
        return [
            Workload("transformer-tiny", transformer_shapes(32, 2, 200, 16)),
            Workload("4-tensors-tiny", [(256, 256)] * 4),
        ]
    return [
        Workload("transformer-10M", transformer_shapes(224, 16, 4000, 256)),
        Workload("4-tensors-100M", [(5000, 5000)] * 4),
    ]


@dataclass
class Bandwidth:
    """Measured memory bandwidth in bytes per second."""

    copy: float
    triad: float
    axpy: float

    @property
    def best(self) -> float:
        return max(self.copy, self.triad, self.axpy)


def measure_bandwidth(elements: int, repeats: int) -> Bandwidth:
    """Best-of-``repeats`` copy, triad and in-place axpy bandwidth on fp32 tensors of ``elements`` entries."""
    a, b, c = (torch.rand(elements) for _ in range(3))
    copy_times, triad_times, axpy_times = [], [], []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        b.copy_(a)
        copy_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        torch.add(b, c, alpha=0.5, out=a)
        triad_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        a.add_(b, alpha=0.5)
        axpy_times.append(time.perf_counter() - start)
    element_bytes = elements * FLOAT32_BYTES
    return Bandwidth(
        copy=2 * element_bytes / min(copy_times[1:]),
        triad=3 * element_bytes / min(triad_times[1:]),
        axpy=3 * element_bytes / min(axpy_times[1:]),
    )


@dataclass
class Mode:
    """One way of running an algorithm: a label and a factory for an optimizer over given params."""

    label: str
    build: Callable[[list[torch.Tensor]], torch.optim.Optimizer]


@dataclass
class Result:
    """Median step times (seconds) by mode label for one configuration on one workload."""

    workload: Workload
    optimizer: str
    configuration: dict
    bytes_per_param: int
    times: dict[str, float] = field(default_factory=dict)

    @property
    def torch_times(self) -> dict[str, float]:
        return {label: t for label, t in self.times.items() if label.startswith("torch")}

    def ratio(self, label: str) -> float:
        return self.times["ours"] / self.times[label] if label in self.times else math.nan

    @property
    def fastest_torch(self) -> str | None:
        return min(self.torch_times, key=self.torch_times.get) if self.torch_times else None


def torch_modes(name: str, configuration: dict, probe: torch.Tensor) -> list[Mode]:
    """torch.optim's for-loop, foreach and (where it accepts fused on this device) fused modes."""
    torch_cls = getattr(torch.optim, name, None)
    if torch_cls is None or not issubclass(torch_cls, torch.optim.Optimizer):
        return []
    options = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    modes = []
    for label, option in options.items():
        try:
            trial_param = probe.detach().clone().requires_grad_()
            trial_param.grad = torch.ones_like(trial_param)
            torch_cls([trial_param], lr=LEARNING_RATE, **configuration, **option).step()
        except (TypeError, RuntimeError, ValueError):
            continue  # this torch class has no such mode on this device
        modes.append(
            Mode(
                f"torch {label}",
                lambda params, cls=torch_cls, option=option: cls(
                    params, lr=LEARNING_RATE, **configuration, **option
                ),
            )
        )
    return modes


def state_tensor_count(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> int:
    """Parameter-shaped state tensors per parameter (the ``k`` of the ``(3 + 2k) * 4`` bytes bound)."""
    state = optimizer.state.get(params[0], {})
    return sum(
        1
        for key, value in state.items()
        if torch.is_tensor(value) and value.shape == params[0].shape and key != "step"
    )


def time_modes(
    modes: list[Mode], workload: Workload, warmup: int, repeats: int
) -> tuple[dict[str, float], int]:
    """Median step time of each mode, interleaved; also the state-tensor count of our optimizer."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(shape, generator=generator).requires_grad_() for shape in workload.shapes]
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator) * 1e-2
    optimizers = [mode.build(params) for mode in modes]
    samples: dict[str, list[float]] = {mode.label: [] for mode in modes}
    for repetition in range(warmup + repeats):
        shift = repetition % len(modes)
        for index in list(range(shift, len(modes))) + list(range(shift)):
            start = time.perf_counter()
            optimizers[index].step()
            elapsed = time.perf_counter() - start
            if repetition >= warmup:
                samples[modes[index].label].append(elapsed)
    count = state_tensor_count(optimizers[0], params)
    del optimizers, params
    return {label: statistics.median(values) for label, values in samples.items()}, count


def configurations(names: Sequence[str] | None) -> list[tuple[str, type, dict]]:
    """(class name, descentlab class, non-default kwargs) for every optimizer, filtered by ``names``."""
    # Closure-driven optimizers (line search, Newton, SVRG) have no per-step kernel to compare.
    classes = {key: cls for key, cls in optimizer_classes().items() if step_protocol(cls) == "gradient"}
    if names:
        unknown = [name for name in names if name.lower() not in classes]
        if unknown:
            raise ValueError(f"--only: unknown optimizer(s) {unknown}; choose from {', '.join(classes)}")
        classes = {key: cls for key, cls in classes.items() if key in {name.lower() for name in names}}
    rows = []
    for cls in classes.values():
        for configuration in [{}, *EXTRA_CONFIGURATIONS.get(cls.__name__, [])]:
            rows.append((cls.__name__, cls, configuration))
    return rows


def run(quick: bool, only: Sequence[str] | None, repeats: int, warmup: int) -> list[Result]:
    """Benchmark every configuration on every workload; returns the results in table order."""
    results = []
    for workload in workloads(quick):
        for name, cls, configuration in configurations(only):
            probe = torch.zeros(3)
            modes = [
                Mode(
                    "ours",
                    lambda params, cls=cls, configuration=configuration: cls(
                        params, lr=LEARNING_RATE, **configuration
                    ),
                )
            ]
            modes += torch_modes(name, configuration, probe)
            times, state_count = time_modes(modes, workload, warmup, repeats)
            result = Result(workload, name, configuration, (3 + 2 * state_count) * FLOAT32_BYTES, times)
            results.append(result)
            print(
                f"  {workload.name:18s} {describe(name, configuration):24s} "
                f"ours {times['ours'] * 1e3:9.2f} ms"
                f"  ours/foreach {format_ratio(result.ratio('torch foreach'))}",
                flush=True,
            )
    return results


def describe(name: str, configuration: dict) -> str:
    return name + (f"({', '.join(f'{k}={v}' for k, v in configuration.items())})" if configuration else "")


def format_number(value: float) -> str:
    """Two decimals, or two significant digits below 0.1 (tiny --quick workloads)."""
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.2g}"


def format_ratio(value: float) -> str:
    return "-" if math.isnan(value) else format_number(value)


def format_ms(seconds: float | None) -> str:
    return "-" if seconds is None else format_number(seconds * 1e3)


def machine_description() -> str:
    """CPU model, cores, torch version and threads, for the results header."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}; {os.cpu_count()} logical cores; torch {torch.__version__}; "
        f"torch threads {torch.get_num_threads()}; Python {platform.python_version()}"
    )


def markdown_table(
    results: list[Result], bandwidth: Bandwidth, repeats: int, warmup: int, quick: bool
) -> str:
    """The results as markdown: header with machine and bandwidth, then one row per configuration."""
    lines = [
        "# Optimizer step time: descentlab vs torch.optim",
        "",
        f"Machine: {machine_description()}.",
        "Note: the machine has 2 cores shared with other jobs; timings carry noise of that order "
        f"(1-minute load average when the table was written: {os.getloadavg()[0]:.2f}). Ratios come from "
        "interleaved steps and so share the load; absolute times of rows without a torch counterpart do not.",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/step_speed.py"
        f"{' --quick' if quick else ''}` (median of {repeats} interleaved steps after {warmup} warm-up, "
        "fp32).",
        f"Measured bandwidth: copy {bandwidth.copy / 1e9:.1f} GB/s, triad {bandwidth.triad / 1e9:.1f} GB/s, "
        f"in-place axpy {bandwidth.axpy / 1e9:.1f} GB/s; `bw` columns = (minimal bytes/param x params / "
        f"{bandwidth.best / 1e9:.1f} GB/s) / measured time (see the script's docstring; the 10M workload can "
        "partly stay in cache, so values above 1 occur there).",
        "",
        "| workload | optimizer | bytes/param | ours ms | torch for-loop ms | torch foreach ms "
        "| torch fused ms | ours / foreach | ours / fastest torch | fastest torch | ours bw "
        "| fastest torch bw |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for result in results:
        bound = result.bytes_per_param * result.workload.parameter_count / bandwidth.best
        fastest = result.fastest_torch
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{result.workload.name} ({len(result.workload.shapes)} tensors, "
                    f"{result.workload.parameter_count / 1e6:.2f}M)",
                    describe(result.optimizer, result.configuration),
                    str(result.bytes_per_param),
                    format_ms(result.times["ours"]),
                    format_ms(result.times.get("torch for-loop")),
                    format_ms(result.times.get("torch foreach")),
                    format_ms(result.times.get("torch fused")),
                    format_ratio(result.ratio("torch foreach")),
                    format_ratio(result.ratio(fastest) if fastest else math.nan),
                    fastest.removeprefix("torch ") if fastest else "-",
                    format_number(bound / result.times["ours"]),
                    format_number(bound / result.times[fastest]) if fastest else "-",
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny workloads and few repeats (smoke test)")
    parser.add_argument("--only", default="", help="comma-separated optimizer names, e.g. adam,sgd")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per mode (default 7, quick 3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per mode first (default 2)")
    parser.add_argument(
        "--output", type=Path, default=RESULTS_PATH, help=f"markdown file (default {RESULTS_PATH})"
    )
    arguments = parser.parse_args(argv)
    if arguments.repeats is None:
        arguments.repeats = 3 if arguments.quick else 7
    if arguments.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {arguments.repeats}")
    if arguments.warmup < 0:
        parser.error(f"--warmup must be >= 0, got {arguments.warmup}")
    return arguments


def main(argv: Sequence[str] | None = None) -> str:
    """Run the benchmark, print the markdown table, write it atomically; returns the table."""
    arguments = parse_arguments(argv)
    only = [name.strip() for name in arguments.only.split(",") if name.strip()]
    bandwidth = measure_bandwidth(
        1 << 20 if arguments.quick else 1 << 26, repeats=3 if arguments.quick else 5
    )
    results = run(arguments.quick, only or None, arguments.repeats, arguments.warmup)
    table = markdown_table(results, bandwidth, arguments.repeats, arguments.warmup, arguments.quick)
    print(table)
    write_atomically(arguments.output, table)
    return table


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
