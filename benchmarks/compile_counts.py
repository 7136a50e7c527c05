"""Graph breaks and recompiles of a compiled ``optimizer.step`` under a per-step scheduler, ours vs torch's.

Run from the repository root::

    PYTHONPATH=src python benchmarks/compile_counts.py               # -> benchmarks/results/compile_counts.md
    PYTHONPATH=src python benchmarks/compile_counts.py --only Adam,SGD --backend inductor
    PYTHONPATH=src python benchmarks/compile_counts.py --first-step Adam,SGD   # + fresh-process first steps
    PYTHONPATH=src python benchmarks/compile_counts.py --only Lion,RMSprop-graves --out /tmp/counts.md

Rows are torch.optim's classes (:data:`OPTIMIZERS`, ours beside torch's) and descentlab's own classes and
variants (:data:`OWN_ROWS`, ours only); ``--only`` takes row names from both.

Method (torch's "Compiling the optimizer" + "LR scheduler with compiled optimizer" recipes). Each
optimizer gets ``lr=torch.tensor(0.01)`` and an ``ExponentialLR`` that rewrites that tensor in place
after every step; ``torch.compile(optimizer.step)`` then runs ``--steps`` times on fresh gradients of
a small MLP. dynamo reports every graph break and every recompile through its ``graph_breaks`` and
``recompiles`` log artifacts, which are captured here (not printed):

- *breaks in step*: graph breaks whose location lies in the optimizer's own code (for us
  ``descentlab/optim``, for torch ``torch/optim/<algorithm>.py``); the breaks around it are counted
  apart (*breaks around*): the scheduler's step-counting wrapper (``lr_scheduler.py`` is on dynamo's
  skip list, so the wrapper runs eagerly and the real ``step`` becomes its own frame) and torch's two
  deliberate ``graph_break()`` calls in ``Optimizer``'s no-grad wrapper;
- *graphs*: graphs handed to the backend on the first step, and on the later steps;
- *recompiles*: "Recompiling function" records (a guard of a cached graph failed), over all steps;
- *vs eager*: the largest relative difference of the parameters after the last step from the same
  implementation's eager run (a row can be free of breaks and still compute something else).

``--why`` prints each break location and the source line of each recompile's failed guard.

The default backend ``aot_eager`` goes through dynamo and AOTAutograd exactly as inductor does but
skips C++ code generation, so counting takes seconds; ``--backend inductor`` measures the real thing.

First step (``--first-step``): seconds from the start of a fresh Python process (imports included) to
the end of the first ``torch.compile(optimizer.step, backend="inductor")`` call, once with an empty
inductor cache (``TORCHINDUCTOR_CACHE_DIR`` a new folder: a cold compile) and once more in a second
process on the cache the first one left (warm).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch._dynamo
from torch import Tensor

import descentlab.optim as ours
from descentlab.atomic import write_text

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "compile_counts.md"
OPTIMIZERS = ("Adam", "AdamW", "SGD", "RMSprop", "Adagrad", "NAdam", "RAdam", "Adamax", "Adadelta")
EXTRA_KWARGS: dict[str, dict] = {"SGD": {"momentum": 0.9}}  # plain SGD has no state to compile
# descentlab's classes and variants that torch.optim lacks: row name -> (class, keyword options). Zeiler's
# AdaDelta has no learning rate (lr must stay 1, so its scheduler multiplies by 1); Graves's RMSprop is the
# centred form with momentum.
OWN_ROWS: dict[str, tuple[str, dict]] = {
    "Lion": ("Lion", {}),
    "Momentum": ("Momentum", {}),
    "Nesterov": ("Nesterov", {}),
    "SWATS": ("SWATS", {}),
    "SWATS-per-tensor": ("SWATS", {"variant": "per-tensor"}),
    # Tolerances under which SWATS switches to SGD within a few steps, so both phases run compiled.
    "SWATS-switch": ("SWATS", {"eps": 0.1}),
    "SWATS-per-tensor-switch": ("SWATS", {"variant": "per-tensor", "switch_rtol": 0.5}),
    "SVRG": ("SVRG", {"snapshot_every": 3}),
    "SVRG-II": ("SVRG", {"snapshot_every": 3, "option": "II"}),
    "Adadelta-zeiler": ("Adadelta", {"variant": "zeiler", "lr": 1.0}),
    "RMSprop-graves": ("RMSprop", {"variant": "graves", "centered": True, "momentum": 0.9}),
    # The other variants and forms (each a different path through its transforms).
    "NormalizedGD": ("NormalizedGD", {}),
    "SGD-nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}),
    "SGD-ema": ("SGD", {"variant": "ema", "momentum": 0.9}),
    "Adam-amsgrad": ("Adam", {"amsgrad": True}),
    "Adam-efficient-eps": ("Adam", {"variant": "efficient-eps"}),
    "Adam-amsgrad-paper": ("Adam", {"variant": "amsgrad-paper", "amsgrad": True}),
    "AdamW-paper": ("AdamW", {"variant": "paper"}),
    "Adamax-paper": ("Adamax", {"variant": "paper"}),
    "Adamax-keras": ("Adamax", {"variant": "keras"}),
    "NAdam-paper": ("NAdam", {"variant": "paper"}),
    "RAdam-paper": ("RAdam", {"variant": "paper"}),
    "RAdam-authors-code": ("RAdam", {"variant": "authors-code"}),
    "RAdam-authors-code-sgd": ("RAdam", {"variant": "authors-code-sgd"}),
    "Adagrad-eps_inside": ("Adagrad", {"variant": "eps_inside"}),
    "RMSprop-eps_inside": ("RMSprop", {"variant": "eps_inside"}),
    "RMSprop-centered-momentum": ("RMSprop", {"centered": True, "momentum": 0.9}),
    "Adadelta-scaled_accumulator": ("Adadelta", {"variant": "scaled_accumulator"}),
    # The algorithms of issue 13 and the wrappers (over Adam; Lookahead synchronises every second step and
    # SAM takes its two gradients through the closure, so 6 steps cross their branches).
    "Adafactor": ("Adafactor", {}),
    "Adafactor-beta1": ("Adafactor", {"beta1": 0.9}),
    "Muon": ("Muon", {}),
    "LAMB": ("LAMB", {}),
    "LARS": ("LARS", {}),
    "Prodigy": ("Prodigy", {}),
    "ScheduleFreeSGD": ("ScheduleFreeSGD", {}),
    "ScheduleFreeAdamW": ("ScheduleFreeAdamW", {}),
    "Lookahead": ("Lookahead", {"base": "adam", "lookahead_k": 2}),
    "SAM": ("SAM", {"base": "adam"}),
    "WeightAveraging": ("WeightAveraging", {"base": "adam", "ema_decay": 0.9}),
}
BREAK_LOCATION = re.compile(r"Graph break .*?in user code at (?P<file>[^\n]+?):(?P<line>\d+)")
# Where the breaks that surround every compiled step live (see the module docstring).
# SVRG's closure (run_step, in this file) calls backward, which dynamo does not trace.
AROUND_STEP = (
    "torch/_dynamo/external_utils.py",
    "torch/optim/lr_scheduler.py",
    "torch/optim/optimizer.py",
    "benchmarks/compile_counts.py",
)


@dataclass
class CompileCounts:
    """What dynamo did while a compiled step ran: graphs, breaks (with their locations), recompiles.

    ``parameters`` holds the model's parameters after the last step, to compare with an eager run.
    """

    graphs_per_step: list[int] = field(default_factory=list)
    recompiles: int = 0
    recompile_reasons: list[str] = field(default_factory=list)
    break_locations: list[str] = field(default_factory=list)
    parameters: list[Tensor] = field(default_factory=list)

    @property
    def graphs_first_step(self) -> int:
        """Graphs compiled during the first step."""
        return self.graphs_per_step[0] if self.graphs_per_step else 0

    @property
    def graphs_later_steps(self) -> int:
        """Graphs compiled during the steps after the first (each one a recompile)."""
        return sum(self.graphs_per_step[1:])

    @property
    def breaks_in_step(self) -> list[str]:
        """Locations of the breaks in the optimizer's own code (not in the wrappers around ``step``)."""
        return [where for where in self.break_locations if not where.startswith(AROUND_STEP)]


class _DynamoRecords(logging.Handler):
    """Collects dynamo's ``graph_breaks`` and ``recompiles`` log records."""

    def __init__(self) -> None:
        super().__init__()
        self.breaks: list[str] = []
        self.recompiles = 0
        self.recompile_reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.name.endswith("__graph_breaks") and (match := BREAK_LOCATION.search(message)):
            path = match.group("file")
            self.breaks.append(f"{_short_path(path)}:{match.group('line')}")
        elif record.name.endswith("__recompiles") and "Recompiling function" in message:
            self.recompiles += 1
            # The first failed guard, after dynamo's "triggered by the following guard failure(s):".
            reasons = [line.strip(" -") for line in message.splitlines()[1:] if line.strip(" -")]
            self.recompile_reasons.append(reasons[-1] if reasons else message.splitlines()[0])


def _short_path(path: str) -> str:
    for root in ("torch/", "descentlab/", "benchmarks/"):
        if f"/{root}" in path:
            return root + path.split(f"/{root}", 1)[1]
    return path


@contextlib.contextmanager
def dynamo_records() -> Iterator[_DynamoRecords]:
    """Capture dynamo's graph-break and recompile records (instead of printing them) while inside."""
    torch._logging.set_logs(graph_breaks=True, recompiles=True)
    # set_logs gives each torch logger its own printer and stops propagation at "torch._dynamo", the
    # parent of both artifacts; the collector replaces its printer there.
    dynamo_logger = logging.getLogger("torch._dynamo")
    printers = list(dynamo_logger.handlers)
    records = _DynamoRecords()
    for printer in printers:
        dynamo_logger.removeHandler(printer)
    dynamo_logger.addHandler(records)
    try:
        yield records
    finally:
        dynamo_logger.removeHandler(records)
        torch._logging.set_logs()


def counting_backend(backend: str, graphs: list[int]) -> Callable:
    """``backend`` (a registered name), appending the node count of every graph it compiles to ``graphs``."""
    compile_graph = torch._dynamo.lookup_backend(backend)

    def count_and_compile(graph_module: torch.fx.GraphModule, example_inputs: list) -> Callable:
        graphs.append(len(graph_module.graph.nodes))
        return compile_graph(graph_module, example_inputs)

    return count_and_compile


def make_problem(seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[torch.nn.Module, Tensor]:
    """A small MLP and its inputs (parameters of three shapes, so buckets hold several tensors)."""
    generator = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).to(dtype)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator, dtype=dtype))
    return model, torch.randn(16, 4, generator=generator, dtype=dtype)


def row_options(name: str) -> tuple[str, dict]:
    """The class name and keyword options of row ``name`` (a torch.optim class name or an own row)."""
    if name in OWN_ROWS:
        return OWN_ROWS[name]
    if name in OPTIMIZERS:
        return name, EXTRA_KWARGS.get(name, {})
    raise SystemExit(f"--only: unknown row {name!r}; choose from {', '.join([*OPTIMIZERS, *OWN_ROWS])}")


def make_optimizer(name: str, implementation: str, params, **kwargs) -> torch.optim.Optimizer:
    """``ours.<class>`` or ``torch.optim.<class>`` of row ``name`` with a tensor lr and the row's options.

    The lr tensor has the parameters' dtype: torch's eager step computes its step sizes in the lr's
    dtype, so a float32 lr would make a float64 run of torch.optim float32-accurate only.
    """
    params = list(params)
    class_name, options = row_options(name)
    cls = getattr(ours if implementation == "ours" else torch.optim, class_name)
    options = {**options, **kwargs}
    lr = torch.tensor(options.pop("lr", 0.01), dtype=params[0].dtype)
    return cls(params, lr=lr, **options)


def has_torch_row(name: str) -> bool:
    """Whether torch.optim has row ``name`` (the torch.optim classes in their torch form)."""
    return name in OPTIMIZERS


def fill_gradients(model: torch.nn.Module, inputs: Tensor, step: int) -> None:
    """Gradients of a loss that changes with ``step``, so every step sees new gradient values."""
    model.zero_grad(set_to_none=False)
    (model(inputs * (1.0 + 0.1 * step)).pow(2).mean()).backward()


def run_step(optimizer, step: Callable, model: torch.nn.Module, inputs: Tensor, index: int) -> None:
    """One (possibly compiled) ``step`` as the optimizer's protocol asks: after backward, or with a closure.

    SVRG's step evaluates a minibatch closure at the iterate and at the snapshot; the snapshot itself is
    taken eagerly when due (it is not part of ``step``). SAM's (protocol ``"closure"``) evaluates it at
    the iterate and at the perturbed point. The closure's backward is a graph break in the closure
    (dynamo does not trace ``backward``), which the table counts as around the step.
    """
    protocol = getattr(optimizer, "step_protocol", "gradient")
    if protocol not in ("svrg", "closure"):
        fill_gradients(model, inputs, index)
        step()
        return
    if protocol == "svrg" and optimizer.needs_snapshot:
        optimizer.take_snapshot(lambda: fill_gradients(model, inputs, 0))

    # The closure holds tensors only: a Python int in its cells would be guarded, so each new value
    # would recompile the step (not what a training loop's closure over its batch does).
    batch = inputs * (1.0 + 0.1 * index)

    def closure() -> Tensor:
        model.zero_grad(set_to_none=False)
        loss = model(batch).pow(2).mean()
        loss.backward()
        return loss

    step(closure)


def measure(
    name: str,
    implementation: str,
    backend: str | None = "aot_eager",
    steps: int = 6,
    dtype: torch.dtype = torch.float32,
) -> CompileCounts:
    """Run ``torch.compile(optimizer.step)`` ``steps`` times under a per-step scheduler and count.

    ``backend=None`` runs the plain eager step instead (nothing to count; the reference parameters).
    """
    torch._dynamo.reset()
    model, inputs = make_problem(dtype=dtype)
    optimizer = make_optimizer(name, implementation, model.parameters())
    # Zeiler's AdaDelta must keep lr = 1: its scheduler rewrites the tensor with the same value.
    gamma = 1.0 if optimizer.param_groups[0].get("variant") == "zeiler" else 0.9
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    graphs: list[int] = []
    step = optimizer.step
    if backend is not None:
        step = torch.compile(optimizer.step, backend=counting_backend(backend, graphs))
    counts = CompileCounts()
    with dynamo_records() as records:
        for index in range(steps):
            compiled_before = len(graphs)
            run_step(optimizer, step, model, inputs, index)
            scheduler.step()
            counts.graphs_per_step.append(len(graphs) - compiled_before)
    counts.recompiles = records.recompiles
    counts.recompile_reasons = records.recompile_reasons
    counts.break_locations = records.breaks
    counts.parameters = [param.detach().clone() for param in model.parameters()]
    return counts


def relative_difference(got: list[Tensor], expected: list[Tensor]) -> float:
    """The largest ``max|got - expected| / max|expected|`` over the parameters (0 when bit for bit)."""
    return max(
        float((a - b).abs().max() / b.abs().max().clamp(min=torch.finfo(b.dtype).tiny))
        for a, b in zip(got, expected, strict=True)
    )


def table(names: list[str], backend: str, steps: int, why: bool = False) -> str:
    """The markdown table: one row per optimizer, ours next to torch's.

    *vs eager* is :func:`relative_difference` of the compiled run's parameters after the last step from
    the same implementation's eager run (float32; a row may be clean of breaks and still wrong).
    """
    lines = [
        f"backend `{backend}`, {steps} steps, tensor lr with ExponentialLR stepped after every step; "
        f"float32. Machine: {machine_line()}",
        "",
        "| optimizer | impl | breaks in step | breaks around | graphs step 1 | graphs later | recompiles "
        "| vs eager | break locations in step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        for implementation in ("ours", "torch") if has_torch_row(name) else ("ours",):
            try:
                counts = measure(name, implementation, backend, steps)
                eager = measure(name, implementation, None, steps)
            except Exception as error:  # a compiled step that fails is a row too, not the end of the table
                message = str(error).strip().splitlines()[0][:120].replace("|", "/")
                failure = f"fails: {type(error).__name__}: {message}"
                lines.append(f"| {name} | {implementation} | {failure} | | | | | | |")
                print(lines[-1], flush=True)
                continue
            inside = counts.breaks_in_step
            around = len(counts.break_locations) - len(inside)
            difference = relative_difference(counts.parameters, eager.parameters)
            lines.append(
                f"| {name} | {implementation} | {len(inside)} | {around} | {counts.graphs_first_step} | "
                f"{counts.graphs_later_steps} | {counts.recompiles} | {difference:.1e} | "
                f"{', '.join(sorted(set(inside)))} |"
            )
            print(lines[-1], flush=True)
            if why:  # what dynamo said, for finding the cause (not written to the table)
                for where in counts.break_locations:
                    print(f"    break at {where}", flush=True)
                for reason in counts.recompile_reasons:
                    print(f"    recompile: {reason}", flush=True)
    return "\n".join(lines) + "\n"


def machine_line() -> str:
    """The machine (step_speed.py's description where it is importable) and the time of the run."""
    try:
        from step_speed import machine_description  # benchmarks/ is on sys.path when run as a script

        machine = machine_description()
    except ImportError:
        machine = f"{platform.machine()}; {os.cpu_count()} logical cores; torch {torch.__version__}"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{machine}; load average {load:.2f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"


FIRST_STEP_SCRIPT = """
import time; started = time.perf_counter()
import sys, torch
sys.path.insert(0, {benchmarks!r})
from compile_counts import make_optimizer, make_problem, fill_gradients
model, inputs = make_problem()
optimizer = make_optimizer({name!r}, {implementation!r}, model.parameters())
fill_gradients(model, inputs, 0)
torch.compile(optimizer.step, backend="inductor")()
print(time.perf_counter() - started)
"""


def first_step_seconds(name: str, implementation: str, cache_dir: str) -> float:
    """Seconds from process start (imports included) to the end of the first compiled step."""
    script = FIRST_STEP_SCRIPT.format(
        benchmarks=str(Path(__file__).resolve().parent), name=name, implementation=implementation
    )
    source = str(Path(__file__).resolve().parents[1] / "src")
    environment = {"TORCHINDUCTOR_CACHE_DIR": cache_dir, "PYTHONPATH": source, "PATH": "/usr/bin:/bin"}
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True
    )
    return float(finished.stdout.strip().splitlines()[-1])


def first_step_table(names: list[str]) -> str:
    """Fresh-process first-step seconds with inductor: cold cache (new folder), then warm (same folder)."""
    lines = ["| optimizer | impl | first step, cold cache (s) | first step, warm cache (s) |"]
    lines.append("|---|---|---|---|")
    for name in names:
        for implementation in ("ours", "torch") if has_torch_row(name) else ("ours",):
            with tempfile.TemporaryDirectory(prefix="descentlab-inductor-") as cache_dir:
                cold = first_step_seconds(name, implementation, cache_dir)
                warm = first_step_seconds(name, implementation, cache_dir)
            lines.append(f"| {name} | {implementation} | {cold:.1f} | {warm:.1f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def main() -> int:
    """Measure the optimizers named on the command line (all of :data:`OPTIMIZERS` by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(OPTIMIZERS), help="comma-separated class names")
    parser.add_argument("--backend", default="aot_eager", help="a torch.compile backend (default aot_eager)")
    parser.add_argument("--steps", type=int, default=6, help="compiled steps per optimizer (default 6)")
    parser.add_argument("--first-step", default="", help="optimizers to time first steps of")
    parser.add_argument("--out", type=Path, default=RESULTS_PATH, help="markdown file (default: results/)")
    parser.add_argument("--why", action="store_true", help="print each break location and recompile reason")
    args = parser.parse_args()
    names = args.only.split(",")
    torch._dynamo.config.recompile_limit = 64  # count every recompile instead of giving up at 8
    report = table(names, args.backend, args.steps, args.why)
    if args.first_step:
        report += "\n" + first_step_table(args.first_step.split(","))
    write_text(args.out, report, parents=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
