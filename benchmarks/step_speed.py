"""Step time of every descentlab optimizer against a bandwidth probe and torch.optim's best mode.

Run from the repository root::

    PYTHONPATH=src python benchmarks/step_speed.py              # full run -> benchmarks/results/step_speed.md
    PYTHONPATH=src python benchmarks/step_speed.py --quick      # seconds-long smoke run
    PYTHONPATH=src python benchmarks/step_speed.py --optimizers adam,sgd --workload 4-tensors-100M
    PYTHONPATH=src python benchmarks/step_speed.py --overhead-only --output /tmp/overhead.md  # tiny models

Configurations. Every optimizer of :func:`descentlab.optim.registry.optimizer_classes` driven by plain
gradients (closure-driven line search, Newton, SVRG and SAM have no per-step kernel to compare; SAM is its
base's step plus a second gradient evaluation) runs in every variant it declares, plus SGD with momentum,
Adam with amsgrad, Lookahead and WeightAveraging over Adam and SWA, and Muon with ns_dtype=float32. A
configuration is *torch-equivalent* when ``torch.optim`` has a class of the same name and the variant is
torch's; those are also run as torch's for-loop (``foreach=False``), ``foreach=True`` and ``fused=True``
(where torch accepts it here). On the workloads SWATS is measured once in each of its phases, held
there (:func:`hold_phase`): on the fixed gradients its switch would otherwise come at some round and mix
the phases in one row.

Bound. An optimizer step must at least read the parameter, its gradient and each state tensor the step
updates, and write the parameter and each such state tensor: ``(3 + 2k) * 4`` bytes per fp32 parameter
for ``k`` updated state tensors (12 for SGD, 20 momentum-like, 28 Adam-like, 36 AMSGrad). The probe is
an in-place stream over tensors of the workload's shapes that moves exactly those bytes: ``p += s g``
(12 bytes) and ``state *= s`` for each of the ``k`` state tensors (8 bytes each), as multi-tensor ops.
This machine's bandwidth drifts between regimes over minutes, so one bound measured up front misleads:
the probe is timed in every round, between the steps (``probe, step A, probe, step B, ..., probe``), and
each step's fraction of the bound is ``mean(probe before, probe after) / step``; 1.0 means the step
moves its minimal bytes at the bandwidth the probe reached at that moment.

Rounds. Each round times one step of every mode, in an order rotated from round to round, after two
warm-up rounds. A step's sample (the step and the probes either side) is *disturbed* when another job
took the memory bus (a probe took more than ``DISTURBED_PROBE_FACTOR`` times the median probe of the
configuration) or a core (the timing thread was on a core for less than ``MIN_CPU_SHARE`` of one of the
three calls, see :func:`timed`), and is dropped. Dropping per step rather than per whole round keeps
enough data on a shared 2-core machine, where a round of four 100M-parameter steps is rarely left alone;
ratios between modes use only the rounds where both samples are clean. Rounds continue until every mode
has ``--min-clean`` clean samples (or ``MAX_ROUNDS_FACTOR`` times that many rounds ran, or
``MAX_SECONDS_PER_CONFIGURATION`` passed). Tables give the median and, in brackets, the interquartile
range over the clean samples.

Also measured: the per-step time on the lab's tiny models (the 2-D ``bowl`` point and the ``digits-mlp``
network), where Python overhead dominates, against torch's modes (rounds with a descheduled sample are
dropped); and the time of construction and of the first step in a fresh Python process (digits-mlp
shapes), against torch's foreach mode.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

import descentlab
from descentlab.atomic import write_text
from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._wrapper import DEFAULT_BASE, OptimizerWrapper
from descentlab.optim.registry import optimizer_classes, resolve_optimizer_class, step_protocol
from descentlab.problems.registry import get_problem

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "step_speed.md"
FLOAT32_BYTES = 4
LEARNING_RATE = 1e-4  # small, so repeated steps on fixed gradients keep the parameters finite
PROBE_SCALE = 1e-3  # the probe's p += s g; any finite value moves the same bytes
DISTURBED_PROBE_FACTOR = 1.3
MAX_ROUNDS_FACTOR = 3
# Under heavy load few samples are clean; this cap keeps a full run within ~15 minutes. A row that hit
# it shows fewer clean steps than the target in its *clean / rounds* cell.
MAX_SECONDS_PER_CONFIGURATION = 25.0
WARMUP_ROUNDS = 2
MIN_CPU_SHARE = 0.9  # of a timed call's wall time on a core, below which it was descheduled (timed())

# Options a variant needs to be valid or meaningful: Zeiler's AdaDelta has no learning rate, the
# paper's AMSGrad and Graves' RMSprop are only defined with amsgrad / centering on, and the EMA form of
# SGD differs from torch's only in how it accumulates momentum.
VARIANT_OPTIONS: dict[tuple[str, str], dict] = {
    ("Adadelta", "zeiler"): {"lr": 1.0},
    ("Adam", "amsgrad-paper"): {"amsgrad": True},
    ("RMSprop", "graves"): {"centered": True},
    ("SGD", "ema"): {"momentum": 0.9},
}
# Torch-equivalent forms beyond the defaults that most training runs use.
# The wrappers (base SGD by default) also over Adam, and SWA beside the default EMA.
EXTRA_OPTIONS: dict[str, list[dict]] = {
    "SGD": [{"momentum": 0.9}],
    "Adam": [{"amsgrad": True}],
    "Adafactor": [{"beta1": 0.9}],  # momentum adds one parameter-shaped buffer (a 20-byte bound)
    "Lookahead": [{"base": "adam"}],
    "WeightAveraging": [{"base": "adam"}, {"average": "swa"}],
    # The Newton-Schulz iteration in float32: on a CPU without bfloat16 matrix instructions (AVX512-BF16,
    # AMX) the default bfloat16 one is 50-100x slower (Muon warns there).
    "Muon": [{"ns_dtype": "float32"}],
}
# SWATS runs Adam until its switch test passes, then SGD with momentum. On the fixed gradients the switch
# would come at some round, mixing the phases in one row, so on the workloads each phase is a row of its
# own, held there (see hold_phase); the tiny models' rows run it unheld.
PHASES: dict[str, tuple[str, ...]] = {"SWATS": ("Adam", "SGD")}
HELD_LAMBDA = 1e6  # SWATS's running projected learning rate held here fails every switch test
TORCH_MODES = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
# torch.optim classes that cannot step these workloads: no peer row (the reason is the class's docstring).
NO_TORCH_PEER = {"Muon": "torch.optim.Muon refuses non-2-D parameters and takes no foreach/fused flag"}


# --- what is measured -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Configuration:
    """One optimizer class with the keyword options that select a variant or form."""

    cls: type[torch.optim.Optimizer]
    options: dict
    phase: str | None = None  # the phase a row holds an optimizer in (PHASES)

    @property
    def name(self) -> str:
        return self.cls.__name__

    def phases(self) -> list[Configuration]:
        """This configuration once for each phase it is held in (SWATS's Adam and SGD), or itself."""
        return [replace(self, phase=phase) for phase in PHASES.get(self.name, ())] or [self]

    @property
    def steps_to_phase(self) -> int:
        """The steps before the held phase begins (its kernel compiles in the step after them)."""
        return 1 if self.phase == "SGD" else 0

    @property
    def torch_class(self) -> type[torch.optim.Optimizer] | None:
        """torch.optim's class of the same name when this configuration is torch's algorithm."""
        torch_cls = getattr(torch.optim, self.name, None)
        if self.name in NO_TORCH_PEER or not (
            isinstance(torch_cls, type) and issubclass(torch_cls, torch.optim.Optimizer)
        ):
            return None
        if self.options.get("variant", "torch") != "torch":
            return None
        # a form torch's constructor cannot express (Adafactor's beta1 momentum) has no torch peer
        accepted = inspect.signature(torch_cls).parameters
        return torch_cls if all(key in accepted for key in self.options if key != "variant") else None

    def describe(self) -> str:
        options = ", ".join(f"{key}={value}" for key, value in self.options.items())
        name = f"{self.name}({options})" if options else self.name
        return f"{name} [{self.phase} phase]" if self.phase else name

    def build(self, params: list[torch.Tensor], **group: object) -> torch.optim.Optimizer:
        """The optimizer over ``params`` in one group with extra ``group`` keys (``compiled=True``)."""
        optimizer = self.cls([{"params": params, **group}], **{"lr": LEARNING_RATE, **self.options})
        if self.phase is not None:
            hold_phase(optimizer, self.phase)
        return optimizer

    @property
    def compilable(self) -> bool:
        """Whether the generated kernel (``compiled=True``) applies (``RuleOptimizer.has_generated_kernel``);
        for a wrapper, its base's (the group key reaches the base, whose param groups the wrapper shares)."""
        cls = self.cls
        if issubclass(cls, OptimizerWrapper):
            cls = resolve_optimizer_class(self.options.get("base", DEFAULT_BASE))
        return issubclass(cls, RuleOptimizer) and cls.has_generated_kernel()


def hold_phase(optimizer: torch.optim.Optimizer, phase: str) -> None:
    """Hold a SWATS ``optimizer`` in ``phase`` with a step pre-hook (which runs inside the timed step).

    Adam: before each step every copy of the running projected learning rate (``lambda_avg``) is set to
    :data:`HELD_LAMBDA`, so the switch test fails; two multi-tensor calls on 0-d tensors, microseconds
    against the workloads' steps of milliseconds. SGD: before the second step the state is set as a switch
    after the first step would set it (Lambda = the learning rate), and the hook removes itself.
    """

    def keep_testing(*_: object) -> None:
        held = [state["lambda_avg"] for state in optimizer.state.values()]
        if held:
            torch._foreach_zero_(held)
            torch._foreach_add_(held, HELD_LAMBDA)

    def switch(*_: object) -> None:
        if not optimizer.state:
            return  # the first step creates the state, in the Adam phase
        for group in optimizer.param_groups:
            for param in group["params"]:
                state = optimizer.state[param]
                for name, value in (("phase", 1.0), ("sgd_lr", LEARNING_RATE), ("switch_lr", group["lr"])):
                    state[name].fill_(value)
                state["switch_step"].copy_(state["step"])
        handle.remove()

    handle = optimizer.register_step_pre_hook(keep_testing if phase == "Adam" else switch)


def configurations(names: Sequence[str] | None) -> list[Configuration]:
    """Every variant of every gradient-driven optimizer (filtered by ``names``), in registry order."""
    classes = {key: cls for key, cls in optimizer_classes().items() if step_protocol(cls) == "gradient"}
    if names:
        unknown = [name for name in names if name.lower() not in classes]
        if unknown:
            raise ValueError(
                f"--optimizers: unknown optimizer(s) {unknown}; choose from {', '.join(classes)}"
            )
        classes = {key: cls for key, cls in classes.items() if key in {name.lower() for name in names}}
    rows = []
    for cls in classes.values():
        variants = getattr(cls, "variants", ())
        rows.append(Configuration(cls, {}))
        rows += [Configuration(cls, {**extra}) for extra in EXTRA_OPTIONS.get(cls.__name__, [])]
        for variant in variants[1:]:
            options = {"variant": variant, **VARIANT_OPTIONS.get((cls.__name__, variant), {})}
            rows.append(Configuration(cls, options))
    return rows


@dataclass
class Workload:
    """Named parameter shapes."""

    name: str
    shapes: list[tuple[int, ...]]

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)

    def describe(self) -> str:
        largest = max(math.prod(shape) for shape in self.shapes)
        return (
            f"{self.name} ({len(self.shapes)} tensors, {self.parameter_count / 1e6:.2f}M, "
            f"largest {largest / 1e6:.2f}M)"
        )


def transformer_shapes(width: int, layers: int, vocabulary: int, context: int) -> list[tuple[int, ...]]:
    """Parameter shapes of a GPT-style transformer (tied embeddings): 12 tensors per layer + 4."""
    shapes: list[tuple[int, ...]] = [(vocabulary, width), (context, width)]
    for _ in range(layers):
        shapes += [(width,), (width,)]  # pre-attention layer norm
        shapes += [(3 * width, width), (3 * width,), (width, width), (width,)]  # attention
        shapes += [(width,), (width,)]  # pre-MLP layer norm
        shapes += [(4 * width, width), (4 * width,), (width, 4 * width), (width,)]  # MLP
    return [*shapes, (width,), (width,)]  # final layer norm


def workloads(quick: bool) -> list[Workload]:
    """196 transformer-shaped tensors of ~10M params and 4 tensors of 100M (tiny ones for --quick).

    At 10M parameters only the token embedding of a transformer can exceed the engine's cache-blocking
    threshold (``RuleOptimizer.block_numel = 2**20`` elements): its 192 x 768 MLP matrices have 147k
    elements. A 16k vocabulary makes the embedding 3.1M elements, so the blocked path runs there too.
    """
    if quick:
        return [
            Workload("transformer-tiny", transformer_shapes(32, 2, 200, 16)),
            Workload("4-tensors-tiny", [(256, 256)] * 4),
        ]
    return [
        Workload("transformer-10M", transformer_shapes(192, 16, 16384, 256)),
        Workload("4-tensors-100M", [(5000, 5000)] * 4),
    ]


@dataclass
class Mode:
    """One way of running a configuration: a label and a factory of optimizers over given params."""

    label: str
    build: Callable[[list[torch.Tensor]], torch.optim.Optimizer]


COMPILED = "ours compiled"


def modes_of(configuration: Configuration, compiled: bool = False) -> list[Mode]:
    """descentlab's optimizer (and with ``compiled`` its generated kernel), then torch's for-loop, foreach
    and fused modes where torch has them."""
    modes = [Mode("ours", configuration.build)]
    if compiled and configuration.compilable:
        modes.append(Mode(COMPILED, lambda params: configuration.build(params, compiled=True)))
    torch_cls = configuration.torch_class
    if torch_cls is None:
        return modes
    for label, option in TORCH_MODES.items():
        kwargs = {"lr": LEARNING_RATE, **configuration.options, **option}
        trial = torch.zeros(3, requires_grad=True)
        trial.grad = torch.ones(3)
        try:
            torch_cls([trial], **kwargs).step()
        except (TypeError, RuntimeError, ValueError):
            continue  # torch has no such mode for this class on this device
        modes.append(Mode(f"torch {label}", lambda params, kwargs=kwargs: torch_cls(params, **kwargs)))
    return modes


def parameters_with_gradients(shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    """Seeded random fp32 parameters of ``shapes`` with fixed random gradients attached."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(shape, generator=generator).requires_grad_() for shape in shapes]
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator) * 1e-2
    return params


def updated_state_count(optimizer: torch.optim.Optimizer, param: torch.Tensor) -> int:
    """How many parameter-shaped state tensors of ``param`` one more step changes (the bound's ``k``).

    Counting the state that changes (on a fresh gradient) rather than the state that exists keeps buffers
    a phase leaves untouched (SWATS's SGD momentum while it runs Adam) out of the minimal traffic. A
    wrapper's state counts with its base's (``optimizer.base``, nested): an EMA or SWA of the weights adds
    one tensor per step. Lookahead's slow weights change only every k-th step, so its bound is its base's;
    they add 16 / k bytes per parameter and step on average (read and write slow and fast weights once a
    cycle). State read but never written (Prodigy's initial point ``p0``) is not counted, so such a bound
    is 4 bytes per parameter low.
    """

    def tensors() -> dict[tuple[int, str], torch.Tensor]:
        found, current = {}, optimizer
        while current is not None:
            for key, value in current.state.get(param, {}).items():
                # A flat copy of the same size counts too (Prodigy's s, kept as torch's authors keep it).
                if torch.is_tensor(value) and value.numel() == param.numel() and value.dim() > 0:
                    found[(id(current), key)] = value
            current = getattr(current, "base", None)
        return found

    # With a gradient other than the fixed one: on the same gradient again Adamax's max keeps exp_inf
    # and NormalizedGD(betas=(0, 0)) its moments, which looked untouched (their bounds were 8-16 B low).
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    fixed = [p.grad for p in params]
    generator = torch.Generator().manual_seed(1)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype)
    before = {key: value.clone() for key, value in tensors().items()}
    optimizer.step()
    for p, grad in zip(params, fixed):
        p.grad = grad
    return sum(
        1 for key, value in tensors().items() if key not in before or not torch.equal(before[key], value)
    )


class StreamingProbe:
    """In-place multi-tensor stream moving ``(3 + 2k) * 4`` bytes per parameter over given shapes."""

    def __init__(self, grads: list[torch.Tensor], state_count: int) -> None:
        self.grads = grads  # read only: shared with the optimizers, like a real step's gradient
        self.targets = [torch.zeros_like(grad) for grad in grads]
        # Zeros stay zeros under scaling, so the probe never meets denormals however long it runs.
        self.states = [[torch.zeros_like(grad) for grad in grads] for _ in range(state_count)]

    def run(self) -> None:
        """One pass over every tensor."""
        torch._foreach_add_(self.targets, self.grads, alpha=PROBE_SCALE)
        for state in self.states:
            torch._foreach_mul_(state, 0.5)


def timed(action: Callable[[], object], repeats: int = 1) -> tuple[float, bool]:
    """Wall seconds per call of ``action`` over ``repeats`` calls, and whether this thread kept its core.

    The calling thread runs the Python side and its share of every parallel kernel, so it is on a core
    for nearly all of an undisturbed call; less than ``MIN_CPU_SHARE`` of the wall time on a core means
    the scheduler gave the core to another job. (The process's CPU time cannot tell: torch's OpenMP
    workers spin while this thread waits, and the spinning counts.)
    """
    cpu, start = time.thread_time(), time.perf_counter()
    for _ in range(repeats):
        action()
    wall = time.perf_counter() - start
    return wall / repeats, time.thread_time() - cpu >= MIN_CPU_SHARE * wall


# --- rounds and their statistics ---------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """One timed step of one mode and the probes timed right before and right after it (seconds)."""

    step: float
    probes: tuple[float, float]
    kept_core: bool  # the step and both probes ran with the timing thread on a core (timed())

    @property
    def bound(self) -> float:
        return sum(self.probes) / len(self.probes)


Round = dict[str, Sample]  # mode label -> its sample in one interleaved round


def run_round(probe: StreamingProbe, optimizers: dict[str, torch.optim.Optimizer], shift: int) -> Round:
    """``probe, step, probe, step, ..., probe`` over the modes, starting ``shift`` places in."""
    labels = list(optimizers)
    labels = labels[shift % len(labels) :] + labels[: shift % len(labels)]
    before, before_kept_core = timed(probe.run)
    samples = {}
    for label in labels:
        step, step_kept_core = timed(optimizers[label].step)
        after, after_kept_core = timed(probe.run)
        samples[label] = Sample(
            step, (before, after), before_kept_core and step_kept_core and after_kept_core
        )
        before, before_kept_core = after, after_kept_core
    return samples


def clean_rounds(rounds: list[Round]) -> list[Round]:
    """Each round with only its undisturbed samples: kept their core, probes within the limit.

    The limit is ``DISTURBED_PROBE_FACTOR`` times the median probe of all the rounds. A disturbance is
    judged by the probes either side of a step rather than by the step's own time, which would bias it.
    """
    probes = [time_ for one in rounds for sample in one.values() for time_ in sample.probes]
    if not probes:
        return []
    limit = DISTURBED_PROBE_FACTOR * statistics.median(probes)
    return [
        {label: sample for label, sample in one.items() if sample.kept_core and max(sample.probes) <= limit}
        for one in rounds
    ]


@dataclass(frozen=True)
class Spread:
    """Median and interquartile range of a sample."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if len(values) < 2:
            return cls(values[0], values[0], values[0]) if values else cls(math.nan, math.nan, math.nan)
        low, median, high = statistics.quantiles(values, n=4, method="inclusive")
        return cls(median, low, high)

    def format(self, scale: float = 1.0) -> str:
        if math.isnan(self.median):
            return "-"
        low, median, high = (format_number(value * scale) for value in (self.low, self.median, self.high))
        return f"{median} [{low}-{high}]"


@dataclass
class Rounds:
    """Clean samples of interleaved rounds by mode label, with paired ratios between modes."""

    modes: list[str]
    run: int
    clean: list[Round]

    def count(self, label: str) -> int:
        return sum(1 for one in self.clean if label in one)

    @property
    def fewest_clean(self) -> int:
        return min(self.count(label) for label in self.modes)

    def step(self, label: str) -> Spread:
        return Spread.of([one[label].step for one in self.clean if label in one])

    def fraction(self, label: str) -> Spread:
        return Spread.of([one[label].bound / one[label].step for one in self.clean if label in one])

    def ratio(self, label: str, mode: str = "ours") -> Spread:
        """``mode`` / ``label`` over the rounds where both samples are clean."""
        return Spread.of(
            [one[mode].step / one[label].step for one in self.clean if {mode, label} <= set(one)]
        )

    @property
    def best_torch(self) -> str | None:
        """The torch mode with the smallest median step time (``None`` without torch modes)."""
        labels = [label for label in self.modes if label.startswith("torch ") and self.count(label)]
        return min(labels, key=lambda label: self.step(label).median) if labels else None


def collect_rounds(take_round: Callable[[int], Round], min_clean: int, max_rounds: int) -> Rounds:
    """Warm-up rounds, then rounds until every mode has ``min_clean`` clean samples (or a cap is hit)."""
    started = time.perf_counter()
    for shift in range(WARMUP_ROUNDS):
        if shift and time.perf_counter() - started > MAX_SECONDS_PER_CONFIGURATION:
            break  # rounds of minutes (Muon's bfloat16 matmuls on an AVX2 CPU): one warm-up round is enough
        take_round(shift)
    rounds: list[Round] = []
    deadline = time.perf_counter() + MAX_SECONDS_PER_CONFIGURATION
    while len(rounds) < max_rounds and time.perf_counter() < deadline:
        rounds.append(take_round(len(rounds)))
        clean = clean_rounds(rounds)
        if all(sum(1 for one in clean if label in one) >= min_clean for label in rounds[0]):
            break
    return Rounds(list(rounds[0]), len(rounds), clean_rounds(rounds))


@dataclass
class Result:
    """Clean rounds of one configuration on one workload."""

    workload: Workload
    configuration: Configuration
    bytes_per_param: int
    rounds: Rounds
    compile_s: float | None = None  # the generated kernel's first step (compilation included)
    load: float = field(default_factory=lambda: os.getloadavg()[0])  # 1-minute load average at the end

    @property
    def probe(self) -> Spread:
        """The probe time beside our optimizer's clean steps: the bound's time."""
        return Spread.of([one["ours"].bound for one in self.rounds.clean if "ours" in one])


def measure(configuration: Configuration, workload: Workload, settings: Settings) -> Result:
    """Rounds of ``configuration``'s modes with the probe between steps, until ``min_clean`` are clean.

    The generated kernel compiles in its first step, here, before the rounds (timed: ``compile_s``)."""
    params = parameters_with_gradients(workload.shapes)
    optimizers = {mode.label: mode.build(params) for mode in modes_of(configuration, settings.compiled)}
    compile_s = None
    if COMPILED in optimizers:
        for _ in range(configuration.steps_to_phase):
            optimizers[COMPILED].step()
        compile_s, _ = timed(optimizers[COMPILED].step)
    optimizers["ours"].step()  # creates the state whose updates updated_state_count counts
    state_count = updated_state_count(optimizers["ours"], params[0])
    probe = StreamingProbe([param.grad for param in params], state_count)
    rounds = collect_rounds(
        lambda shift: run_round(probe, optimizers, shift), settings.min_clean, settings.max_rounds
    )
    return Result(workload, configuration, (3 + 2 * state_count) * FLOAT32_BYTES, rounds, compile_s)


def run_workloads(settings: Settings) -> Iterator[Result]:
    """Measure every configuration on every workload, printing one progress line per result."""
    for workload in settings.workloads:
        for configuration in (held for row in settings.configurations for held in row.phases()):
            result = measure(configuration, workload, settings)
            rounds, best = result.rounds, result.rounds.best_torch
            versus = f"  ours/{best.removeprefix('torch ')} {rounds.ratio(best).format()}" if best else ""
            if result.compile_s is not None:
                versus += f"  compiled {rounds.step(COMPILED).format(1e3)} ms"
                versus += f" fraction {rounds.fraction(COMPILED).format()}"
                versus += (
                    f" /{best.removeprefix('torch ')} {rounds.ratio(best, COMPILED).format()}" if best else ""
                )
            print(
                f"  {workload.name:17s} {configuration.describe():42s} {rounds.count('ours'):2d}/{rounds.run}"
                f" clean  ours {rounds.step('ours').format(1e3)} ms"
                f"  fraction {rounds.fraction('ours').format()}{versus}  load {result.load:.2f}",
                flush=True,
            )
            yield result


# --- tiny models: per-step overhead -------------------------------------------------------------------
def tiny_models() -> list[tuple[str, list[tuple[int, ...]]]]:
    """Parameter shapes of the lab's ``bowl`` point and ``digits-mlp`` network, from the registry."""
    models = []
    for name in ("bowl", "digits-mlp"):
        problem = get_problem(name)
        task = problem.make_task(0, problem.batch_size)
        models.append((name, [tuple(param.shape) for param in task.model.parameters()]))
    return models


@dataclass
class Overhead:
    """Clean rounds of one configuration on one tiny model."""

    model: str
    configuration: Configuration
    rounds: Rounds


def overhead_round(optimizers: dict[str, torch.optim.Optimizer], steps: int, shift: int) -> Round:
    """``steps`` steps of each mode in turn, starting ``shift`` places in (no probe: not memory-bound)."""
    labels = list(optimizers)
    labels = labels[shift % len(labels) :] + labels[: shift % len(labels)]
    samples = {}
    for label in labels:
        seconds, kept_core = timed(optimizers[label].step, steps)
        samples[label] = Sample(seconds, (0.0, 0.0), kept_core)
    return samples


def measure_overhead(model: str, shapes: list, configuration: Configuration, settings: Settings) -> Overhead:
    """Per-step time of every mode of ``configuration`` over ``shapes``, in interleaved rounds."""
    optimizers = {
        mode.label: mode.build(parameters_with_gradients(shapes)) for mode in modes_of(configuration)
    }
    rounds = collect_rounds(
        lambda shift: overhead_round(optimizers, settings.overhead_steps, shift),
        settings.overhead_rounds,
        settings.max_rounds,
    )
    return Overhead(model, configuration, rounds)


# --- first step in a fresh process ------------------------------------------------------------------
FIRST_STEP_CHILD = r"""
import json, sys, time
request = json.loads(sys.argv[1])
import torch
start = time.perf_counter()
if request["library"] == "descentlab":
    import descentlab.optim as library
else:
    library = torch.optim
imported = time.perf_counter()
generator = torch.Generator().manual_seed(0)
params = [torch.randn(shape, generator=generator).requires_grad_() for shape in request["shapes"]]
for param in params:
    param.grad = torch.randn(param.shape, generator=generator) * 1e-2
begin = time.perf_counter()
optimizer = getattr(library, request["name"])([{"params": params, **request["group"]}], **request["options"])
built = time.perf_counter()
optimizer.step()
first = time.perf_counter()
optimizer.step()
second = time.perf_counter()
print(json.dumps({
    "import": imported - start, "construct": built - begin, "first": first - built, "second": second - first
}))
"""


def first_step(
    library: str, configuration: Configuration, shapes: list, repeats: int, group: dict | None = None
) -> dict[str, Spread]:
    """Import, construction, first and second step times over ``repeats`` fresh processes (``group``:
    extra param-group keys, e.g. ``compiled=True``)."""
    options = {
        "lr": LEARNING_RATE,
        **configuration.options,
        **({"foreach": True} if library == "torch" else {}),
    }
    request = json.dumps(
        {
            "library": library,
            "name": configuration.name,
            "options": options,
            "shapes": shapes,
            "group": group or {},
        }
    )
    source = str(Path(descentlab.__file__).resolve().parents[1])
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])),
    }
    samples: dict[str, list[float]] = {}
    for _ in range(repeats):
        completed = subprocess.run(
            [sys.executable, "-c", FIRST_STEP_CHILD, request],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        for key, value in json.loads(completed.stdout).items():
            samples.setdefault(key, []).append(value)
    return {key: Spread.of(values) for key, values in samples.items()}


FirstStep = tuple[Configuration, dict[str, Spread], dict[str, Spread] | None]


# --- report -------------------------------------------------------------------------------------------
def format_number(value: float) -> str:
    """Three significant digits (two decimals from 1 to 100), so tiny --quick values stay readable."""
    if value == 0 or math.isnan(value):
        return "-" if math.isnan(value) else "0"
    return f"{value:.2f}" if 1 <= abs(value) < 100 else f"{value:.3g}"


def lscpu_field(name: str) -> str | None:
    """One field of ``lscpu`` (``None`` where lscpu is missing or lacks it)."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in output.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def machine_description() -> str:
    """CPU model, cores, last-level cache, torch version and threads, for results headers."""
    model = lscpu_field("Model name") or platform.processor() or "unknown CPU"
    cache = lscpu_field("L3 cache")
    return (
        f"{model}; {os.cpu_count()} logical cores{f'; L3 {cache}' if cache else ''}; "
        f"torch {torch.__version__}; torch threads {torch.get_num_threads()}; "
        f"Python {platform.python_version()}"
    )


def main_table(results: list[Result]) -> list[str]:
    """One row per configuration and workload: ours, torch's modes, fractions of the bound, ratio."""
    lines = [
        "| workload | optimizer | B/param | clean / rounds | probe ms | ours ms | ours fraction "
        "| torch for-loop ms | torch foreach ms | torch fused ms | best torch | best torch fraction "
        "| ours / best torch | compiled ms | compiled fraction | compiled / best torch | compile s | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        rounds, best = result.rounds, result.rounds.best_torch
        cells = [
            result.workload.name,
            result.configuration.describe(),
            str(result.bytes_per_param),
            f"{rounds.fewest_clean} / {rounds.run}",
            result.probe.format(1e3),
            rounds.step("ours").format(1e3),
            rounds.fraction("ours").format(),
            *(rounds.step(f"torch {label}").format(1e3) for label in TORCH_MODES),
            best.removeprefix("torch ") if best else "-",
            rounds.fraction(best).format() if best else "-",
            rounds.ratio(best).format() if best else "-",
            rounds.step(COMPILED).format(1e3),
            rounds.fraction(COMPILED).format(),
            rounds.ratio(best, COMPILED).format() if best else "-",
            f"{result.compile_s:.1f}" if result.compile_s is not None else "-",
            f"{result.load:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def overhead_table(overheads: list[Overhead]) -> list[str]:
    """Per-step microseconds on the tiny models: ours, torch's modes, ours / torch foreach."""
    lines = [
        "| model | optimizer | ours us | torch for-loop us | torch foreach us | torch fused us "
        "| ours / foreach |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for overhead in overheads:
        rounds = overhead.rounds
        cells = [
            overhead.model,
            overhead.configuration.describe(),
            rounds.step("ours").format(1e6),
            *(rounds.step(f"torch {label}").format(1e6) for label in TORCH_MODES),
            rounds.ratio("torch foreach").format(),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def first_step_table(first_steps: list[FirstStep]) -> list[str]:
    """Construction, first and second step (ms) in fresh processes, ours and torch foreach."""
    lines = [
        "| optimizer | ours construct ms | ours first step ms | ours second step ms "
        "| torch construct ms | torch first step ms | torch second step ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for configuration, ours, theirs in first_steps:
        cells = [configuration.describe()]
        for times in (ours, theirs):
            keys = ("construct", "first", "second")
            cells += [times[key].format(1e3) for key in keys] if times else ["-"] * len(keys)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# --- command line ---------------------------------------------------------------------------------
@dataclass
class Settings:
    """What one run measures, resolved from the command line."""

    quick: bool
    workloads: list[Workload]
    configurations: list[Configuration]
    min_clean: int
    max_rounds: int  # per configuration; --quick takes no extra rounds for disturbed steps
    overhead_rounds: int
    overhead_steps: int
    first_step_repeats: int
    threads: int
    output: Path
    compiled: bool = False
    warm_cache: bool = False  # compile with inductor's existing cache folder instead of a fresh one
    overhead_only: bool = False  # only the tiny models' per-step overhead (no workloads, no first steps)


def parse_arguments(argv: Sequence[str] | None) -> Settings:
    """Settings from ``argv``; unknown workloads and optimizers raise ``SystemExit`` / ``ValueError``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny workloads, few rounds (smoke test)")
    parser.add_argument("--optimizers", default="", help="comma-separated optimizer names, e.g. adam,sgd")
    parser.add_argument("--workload", default="", help="comma-separated workload names (default: all)")
    parser.add_argument(
        "--min-clean", type=int, default=None, help="clean rounds per configuration (default 20)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help=f"torch intra-op threads (default {torch.get_num_threads()}; 1 is steadier on a busy machine)",
    )
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="also run the generated one-pass kernel (compiled=True; compiles once per configuration)",
    )
    parser.add_argument(
        "--warm-cache",
        action="store_true",
        help="with --compiled: keep inductor's cache folder (default: a fresh one, so compile s is cold)",
    )
    parser.add_argument(
        "--overhead-only",
        action="store_true",
        help="only the per-step overhead on the lab's tiny models (skips the workloads and first steps)",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_PATH, help=f"markdown file (default {RESULTS_PATH})"
    )
    arguments = parser.parse_args(argv)
    min_clean = arguments.min_clean or (2 if arguments.quick else 20)
    if min_clean < 1:
        parser.error(f"--min-clean must be >= 1, got {min_clean}")
    if arguments.threads < 1:
        parser.error(f"--threads must be >= 1, got {arguments.threads}")
    available = {workload.name: workload for workload in workloads(arguments.quick)}
    names = [name.strip() for name in arguments.workload.split(",") if name.strip()] or list(available)
    unknown = [name for name in names if name not in available]
    if unknown:
        parser.error(f"--workload: unknown workload(s) {unknown}; choose from {', '.join(available)}")
    optimizers = [name.strip() for name in arguments.optimizers.split(",") if name.strip()]
    return Settings(
        quick=arguments.quick,
        workloads=[available[name] for name in names],
        configurations=configurations(optimizers or None),
        min_clean=min_clean,
        max_rounds=min_clean * (1 if arguments.quick else MAX_ROUNDS_FACTOR),
        overhead_rounds=2 if arguments.quick else 20,
        overhead_steps=5 if arguments.quick else 100,
        first_step_repeats=1 if arguments.quick else 3,
        threads=arguments.threads,
        output=arguments.output,
        compiled=arguments.compiled,
        warm_cache=arguments.warm_cache,
        overhead_only=arguments.overhead_only,
    )


def measure_first_steps(settings: Settings, shapes: list) -> list[FirstStep]:
    """Fresh-process first steps of each class's default configuration (--quick: the first only)."""
    defaults = [configuration for configuration in settings.configurations if not configuration.options]
    rows = []
    for configuration in defaults[:1] if settings.quick else defaults:
        ours = first_step("descentlab", configuration, shapes, settings.first_step_repeats)
        theirs = None
        if configuration.torch_class:
            theirs = first_step("torch", configuration, shapes, settings.first_step_repeats)
        rows.append((configuration, ours, theirs))
    return rows


# One tensor large enough for the generated kernel (the lab's tiny models take the eager path).
COMPILED_FIRST_STEP_SHAPES = [(1024, 1024)]


def measure_compiled_first_steps(settings: Settings) -> list[FirstStep]:
    """Fresh-process first steps with ``compiled=True`` (each class's default configuration, --quick: the
    first), beside ours eager on the same tensor; the first process may meet a cold inductor cache."""
    defaults = [c for c in settings.configurations if not c.options and c.compilable]
    shapes = COMPILED_FIRST_STEP_SHAPES
    return [
        (
            configuration,
            first_step("descentlab", configuration, shapes, settings.first_step_repeats, {"compiled": True}),
            first_step("descentlab", configuration, shapes, settings.first_step_repeats),
        )
        for configuration in (defaults[:1] if settings.quick else defaults)
    ]


def header(settings: Settings, load_at_start: float, seconds: float) -> list[str]:
    """Title, machine, load, workloads and method lines of the report."""
    quick = " --quick" if settings.quick else ""
    return [
        "# Optimizer step time: descentlab vs a bandwidth probe and torch.optim",
        "",
        f"Machine: {machine_description()}.",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/step_speed.py{quick}`"
        f" in {seconds / 60:.1f} min; 1-minute load average {load_at_start:.2f} at the start and "
        f"{os.getloadavg()[0]:.2f} at the end (2 cores shared with other jobs; the `load` column is the "
        "load average when the row finished).",
        "Workloads: " + "; ".join(workload.describe() for workload in settings.workloads) + ".",
        *([cache_line(settings)] if settings.compiled else []),
        "",
        "Method (see the script's docstring): fp32; every round times `probe, step, probe, step, ..., "
        f"probe` over all modes in rotated order, after {WARMUP_ROUNDS} warm-up rounds. The probe is an "
        "in-place multi-tensor stream over the workload's shapes moving the step's minimal bytes (B/param: "
        "12 SGD, 20 momentum-like, 28 Adam-like, 36 AMSGrad); *fraction* = mean of the two probes beside a "
        "step / the step's time (1.0 = at the bandwidth bound of that moment). A step is dropped when a "
        f"probe beside it took over {DISTURBED_PROBE_FACTOR} x the median probe or the timing thread was "
        f"on a core for under {MIN_CPU_SHARE:.0%} of the step or a probe. Cells: median [interquartile "
        "range] over the clean steps; *clean / rounds*: the fewest clean steps of any mode (target "
        f"{settings.min_clean}) / rounds run; *ours / best torch* is paired over the rounds where both "
        "steps are clean.",
        "",
    ]


def cache_line(settings: Settings) -> str:
    """Which inductor cache folder the compiles used, so the *compile s* column reads right."""
    if settings.warm_cache:
        return (
            "Inductor cache: the existing folder (--warm-cache), so *compile s* of a graph compiled before "
            "is a load, not a cold compile."
        )
    return "Inductor cache: a fresh folder for this run, so every *compile s* is a cold compile."


def fresh_inductor_cache() -> str:
    """Point inductor (and so descentlab's saved kernels) at a new empty folder, for cold compiles; this
    process's first-step children inherit it. Returns the folder, for the caller to remove."""
    folder = tempfile.mkdtemp(prefix="step_speed_inductor_")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    return folder


def overhead_section(settings: Settings, overheads: list[Overhead]) -> list[str]:
    """The tiny-model per-step overhead section of the report."""
    return [
        "## Per-step overhead on the lab's tiny models (Python overhead dominates)",
        "",
        f"Microseconds per step, {settings.overhead_steps} steps per sample, "
        f"{settings.overhead_rounds} clean samples per mode (dropped: samples where the timing thread was on "
        f"a core for under {MIN_CPU_SHARE:.0%} of the time); *ours / foreach* is paired round by round.",
        "",
        *overhead_table(overheads),
    ]


def tiny_sections(settings: Settings, overheads: list[Overhead], first_steps: list[FirstStep]) -> list[str]:
    """The tiny-model overhead and fresh-process first-step sections of the report."""
    import_time = Spread.of([ours["import"].median for _, ours, _ in first_steps])
    return [
        *overhead_section(settings, overheads),
        "",
        "## Construction and first step in a fresh process (digits-mlp parameters)",
        "",
        f"Median [IQR] over {settings.first_step_repeats} fresh processes per cell; torch runs with "
        f"foreach=True. Importing `descentlab.optim` after torch took {import_time.format(1e3)} ms.",
        "",
        *first_step_table(first_steps),
    ]


def overhead_report(
    settings: Settings, overheads: list[Overhead], load_at_start: float, started: float
) -> list[str]:
    """The report of an ``--overhead-only`` run: machine and load, then the overhead section."""
    return [
        "# Per-step optimizer overhead on the lab's tiny models: descentlab vs torch.optim",
        "",
        f"Machine: {machine_description()}.",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `benchmarks/step_speed.py "
        f"--overhead-only` in {(time.perf_counter() - started) / 60:.1f} min; 1-minute load average "
        f"{load_at_start:.2f} at the start and {os.getloadavg()[0]:.2f} at the end.",
        "",
        *overhead_section(settings, overheads),
    ]


def main(argv: Sequence[str] | None = None) -> str:
    """Run the benchmark, print the markdown report, write it atomically; returns the report."""
    started, load_at_start = time.perf_counter(), os.getloadavg()[0]
    settings = parse_arguments(argv)
    torch.set_num_threads(settings.threads)
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    cache = fresh_inductor_cache() if settings.compiled and not settings.warm_cache else None
    try:
        return run(settings, started, load_at_start)
    finally:
        if cache is not None:  # the folder is gone: leave no setting that names it
            shutil.rmtree(cache, ignore_errors=True)
            if previous is None:
                os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            else:
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous


def run(settings: Settings, started: float, load_at_start: float) -> str:
    """:func:`main` once the settings are parsed: measure, report, write."""
    results = [] if settings.overhead_only else list(run_workloads(settings))
    models = tiny_models()
    overheads = [
        measure_overhead(model, shapes, configuration, settings)
        for model, shapes in models
        for configuration in settings.configurations
    ]
    if settings.overhead_only:
        report = "\n".join(overhead_report(settings, overheads, load_at_start, started)) + "\n"
        print(report)
        write_text(settings.output, report, parents=True)
        return report
    first_steps = measure_first_steps(settings, dict(models)["digits-mlp"])
    lines = header(settings, load_at_start, time.perf_counter() - started)
    lines += ["## Step time and fraction of the bandwidth bound", "", *main_table(results), ""]
    lines += tiny_sections(settings, overheads, first_steps)
    if settings.compiled:
        lines += [
            "",
            "## First step with the generated kernel (compiled=True) in a fresh process (one 1024 x 1024 "
            "tensor)",
            "",
            f"Median [IQR] over {settings.first_step_repeats} fresh processes; *ours*: compiled=True, "
            "*torch*: our eager path on the same tensor. The first step includes the compile (dynamo's "
            "trace and inductor) where no saved entry serves it, else loading the saved entry.",
            "",
            *first_step_table(measure_compiled_first_steps(settings)),
        ]
    report = "\n".join(lines) + "\n"
    print(report)
    write_text(settings.output, report, parents=True)
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
