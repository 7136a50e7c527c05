"""The generated one-pass path of a chain: one compiled call per bucket, scalars hoisted.

Opt in per param group with ``compiled=True`` (``Adam([{"params": ..., "compiled": True}])``, or set
``group["compiled"] = True`` later). The math is not written a second time: the engine's own update of a
bucket (:meth:`RuleOptimizer._apply`: coupled or decoupled weight decay, the evaluation point, the
declared chain, applying the directions) is traced by ``torch.compile`` over the whole bucket (every
tensor of one device, dtype and state layout, whole, not cut into blocks), with the step count, ``lr``
and the hyperparameters declared as tensors (Adam's ``betas``) passed as float64 tensors (the engine's
compiled-step contract, see :mod:`descentlab.optim._engine`), so a scheduler never recompiles. Inductor
fuses each tensor's chain of multi-tensor kernels into one C++/OpenMP loop that reads the parameter, its
gradient and its state once and writes them once (one pass over memory, where the eager chain makes one
pass per kernel), and emits the loops of all the bucket's tensors in one module, so a step is one call.
A chain with a per-tensor reduction (a norm) needs two passes, the reduction's and the update's.

What makes it fast, beyond the fusion:

- **Scalars hoisted.** Inductor inlines a 0-d computation into the loop that reads it, so the bias
  corrections ``1 - beta**t``, their roots and quotients and ``-lr * ...`` were recomputed (``std::pow``
  in double) for every 16-element vector, which made Adam's loop compute-bound (3x slower than torch's
  fused kernel). A graph pass (:class:`~descentlab.optim._hoisting.HoistScalars`) finds every value
  that depends only on the scalar inputs (step counts, ``lr``, tensor hyperparameters) and has inductor
  materialise it in a tiny kernel of its own first, so the loop reads finished scalars.
- **Step counts in the graph.** The bucket's parameters' step counts are incremented inside the
  compiled call (one more fused kernel), not by the engine: 196 separate 0-d increments cost about
  0.8 ms on a CPU, as long as the whole update of a 10M-parameter transformer's Adam step.
- **At most 4 tensors per loop.** Inductor puts up to 16 equal-sized tensors in one loop by default: for
  Adam 112 memory streams at once, which made the 196-tensor step 1.3x torch's fused kernel on an AMD
  EPYC; with 4 it is 1.04-1.07x (``cpp.max_horizontal_fusion_size``, set in :mod:`._hoisting`), and
  0.96-1.01x with the calls below.
- **Barriers only where a loop depends on another.** Each fused loop of inductor's OpenMP region ends
  with a barrier, 194 a step on 196 tensors, though no tensor's loop reads what another writes; they
  are dropped (``nowait``) except where inductor's dependency analysis says a loop reads one still
  running (:func:`~descentlab.optim._hoisting._no_barriers_between_independent_loops`).
- **No size asserts.** Shapes are static, so dynamo's guards have checked every input's sizes and
  strides before the call; inductor's wrapper re-checking them cost ~0.4 ms a step on 196 tensors.
- **Reductions in the loops, no temporaries.** A per-tensor norm is traced as ``vector_norm`` (see
  :func:`descentlab.optim._rules.norms`), a reduction inductor fuses into the loop that computes its
  operand, where ``_foreach_norm`` was aten's kernel, a pass of its own. A value read by two loops (LAMB's
  update ``u``, read by its norm and by the step) is recomputed in the second, not stored
  (``realize_reads_threshold``, set in :mod:`._hoisting`): storing it allocated a 4 B/param temporary,
  page faults included, at every step. LAMB on 4 x 25M-element tensors 207 -> 120 ms, LARS 98 -> 70 ms;
  the two passes of such a chain (its norms', then the update's) read 44 B/param for LAMB and 28 for LARS.
- **Cheap calls.** The traced function receives the optimizer class's stateless twin (one per class, see
  :func:`_twin`), a plain dict of the group's hyperparameters and the bucket, never the optimizer itself:
  dynamo guards an optimizer by identity, so every new optimizer instance retraced. A call does not
  enter dynamo (:func:`_entry`): the guards of each compiled entry are checked, and the first entry
  that admits the call runs its bytecode directly, which saves about 0.7 ms of frame hook and wrappers
  a step on 196 tensors; where no guard passes (a changed constant, other strides) a new entry is made.
- **Compiled once per machine.** Entries are compiled ahead of time (``aot_compile``) and saved
  (:mod:`descentlab.optim._precompiled`), so a later process loads the entry, guards and graph, instead
  of tracing the update again and looking it up in inductor's cache.

Chains with state run here (``RuleOptimizer.has_generated_kernel``), over whole tensors
(:meth:`Bucket.traceable`): elementwise ones, a DTensor as its local shard, and those with per-tensor
reductions (LAMB's and LARS's trust ratios, SWATS's switch test, Muon's orthogonalisation), a DTensor
eagerly (a shard's norm is not the tensor's). A chain with a group reduction (Prodigy's sums over the
whole group, which its rule turns into the new ``d`` on the host) runs in two kernels: the sums' (one
call per bucket or part, :func:`_bucket_sums`), then the update's, which takes the group state as
tensors, as Schedule-Free's. A state created on first use (SGD's first momentum buffer) and plain SGD
(one kernel already) take the eager path, except where a wrapper's average (:class:`Averaging`,
WeightAveraging's EMA and SWA) is to be fused into the base's loop, plain SGD's included (4 x 25M
float32: 40.1 ms a step against 56.4 ms for SGD and a separate lerp). Group-level state (Schedule-Free's step
count and weight sums) advances on the host and reaches the kernel as tensors, as ``lr`` does: as
constants, each step would be a new compile. Shapes are static: one compiled entry per (class, variant,
dtype, flags, bucket shapes), so a model compiles once per machine, and a later process
loads the saved entry. Construction and first step of one 1024 x 1024 tensor in a fresh process take
1.6-1.85 s on a 2-core AMD EPYC against 1.0-1.1 s for torch's fused Adam (both import dynamo, ~1 s, which
torch's ``Optimizer`` constructor does; loading the entry is the rest, 0.7 s); 196 tensors 2.2-2.5 s.
Besides the trace, three costs of that step are cut: inductor's checks of the CPU's vector ISAs, ten
probe subprocesses per process, are remembered from the first process on the machine (3-4 s on an Intel
Xeon), as is its validation of the precompiled C++ header (a ``g++ -E`` per process, ~0.15 s; both
:mod:`descentlab.optim._remembered_probes`), and inductor's GPU kernel templates are compiled from jinja2
only when first rendered, not at its import (~0.2 s; :func:`descentlab.optim._hoisting._compile_fx`).

A cold compile grows with the tensor count of a call (seconds for a few large tensors; 41.5 s for a
196-tensor transformer's Adam as one call in a fresh process on 2 cores, 28.0 s in two parts, the
vector-ISA checks of a fresh cache folder included), which is why this path is an opt-in. So a deep
model's bucket is called in parts of whole repeated layers (:mod:`descentlab.optim._parts`), and the
layers after the first reuse its entry: one layer a call for chains with per-tensor reductions (LAMB's
cold compile on that transformer 15 s, not 55 s), parts of at least 64 tensors for elementwise ones (a
call costs about 25 us of Python and an OpenMP region). Sums over the whole group do not stop that: those
a step needs before it moves (Prodigy's) have a kernel of their own, above, and those that decide the next
step (SWATS's switch test, an ``UpdateSums``) are returned by each part's call, in the update's loop, and
finished on the host. A kernel may be specialised on values read on the host from the part's state before
the call (``Transform.kernel_constants``: SWATS's phase, so each phase's kernel reads only its own state).
``benchmarks/results/generated_kernel.md`` and ``step_speed.md`` have the measured speeds and times. A
compile that runs longer than :data:`REPORT_AFTER_S` is reported on the ``descentlab.optim`` logger (a
warning, so it shows without any logging set up): once while it runs, and once when it ends, with its
time. Without a working compiler (inductor needs a C++ compiler on the CPU) the eager path runs, after a
one-time warning.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from descentlab.optim import _precompiled
from descentlab.optim._remembered_probes import remembered_probes
from descentlab.optim._rules import lerp_

if TYPE_CHECKING:
    from descentlab.optim._bucket import Bucket
    from descentlab.optim._engine import RuleOptimizer

# Every (class, variant, dtype, flags, shapes) is one compiled entry; past this many in one process a new
# configuration runs eagerly (a bucket whose shapes change at every step would otherwise compile forever).
RECOMPILE_LIMIT = 256
# Traces of one compile at most: dynamo restarts a trace to specialise symbolic floats (see _aot_compile).
_TRACE_ATTEMPTS = 4
# A bucket of fewer elements than this takes the eager path: its step costs microseconds either way, and
# a compile would cost seconds (the lab's 2-D problems and tiny models).
MIN_NUMEL = 1 << 14

# A compile (a call that no entry's guards admit and none on disk serves) that takes longer than this many
# seconds is reported while it runs and when it ends.
REPORT_AFTER_S = 10.0
logger = logging.getLogger("descentlab.optim")

_unavailable: set[str] = set()  # classes whose compilation failed: eager from then on (warned once)
_over_the_limit: set[str] = set()  # classes told that RECOMPILE_LIMIT was reached
_entries: dict[tuple[type, str], list[Any]] = {}  # each class's entries of each traced function, oldest first
_NOT_RUN = object()  # what a kernel call that could not run returns
kernel_calls = 0  # buckets updated by the compiled kernel in this process (read by the tests)
compiled_entries = 0  # entries compiled in this process (read by the tests)
loaded_entries = 0  # entries loaded from disk (read by the tests)
traces = 0  # dynamo traces begun by the compiles of this process (read by the tests)


def _bucket_update(
    optimizer: RuleOptimizer,
    group: dict[str, Any],
    bucket: Bucket,
    step: Tensor,
    counts: list[Tensor],
    averages: list[Tensor] | None = None,
    averaged: tuple[int, ...] = (),
    weight: Tensor | None = None,
) -> list[Tensor] | None:
    """What is traced: the engine's update of one bucket (the single source of the algorithm's math),
    the increment of its parameters' step counts (``counts``; the new count is ``step``), and where a
    wrapper asked for it (:class:`Averaging`) ``average <- lerp(average, param, weight)`` of the moved
    parameters at the indices ``averaged``, fused into the update's loop, so each average costs one read
    and one write of its own. Returns the partial sums the chain took for its ``UpdateSums`` (SWATS's
    switch test), computed in the update's loop."""
    if counts:
        torch._foreach_add_(counts, 1)
    sums = optimizer._apply(group, bucket, step)
    if averages:
        # The eager step's lerp takes its weight in the parameters' dtype, so the traced one does too.
        like = weight.reshape(()).to(bucket.params[0].dtype)  # type: ignore[union-attr]
        lerp_(averages, [bucket.params[index] for index in averaged], like)
    return sums


class Averaging:
    """A wrapper's request to its base's generated kernel for one group and step (WeightAveraging's
    EMA or SWA): right after the update moves a parameter, ``average <- average + weight * (param -
    average)`` in the same loop, instead of a second pass over the parameters after the step.

    ``averages`` maps ``id(param)`` to the parameter's average. The kernel asks :meth:`of` for the part
    it is about to update and reports the parameters it averaged (:meth:`done`); the wrapper averages the
    others itself (no gradient, a complex parameter, which the bucket holds as a real view, a part run
    eagerly).
    """

    def __init__(self, averages: dict[int, Tensor], weight: float) -> None:
        self.averages = averages
        self.weight = weight
        self.averaged: set[int] = set()

    def of(self, params: list[Tensor]) -> tuple[tuple[int, ...], list[Tensor]]:
        """The indices of ``params`` that have an average to update now, and those averages."""
        found = self.averages
        indices = tuple(index for index, param in enumerate(params) if id(param) in found)
        return indices, [found[id(params[index])] for index in indices]

    def done(self, params: list[Tensor], indices: tuple[int, ...]) -> None:
        """Record that the kernel updated the averages of ``params`` at ``indices``."""
        self.averaged.update(id(params[index]) for index in indices)


def _bucket_sums(
    optimizer: RuleOptimizer, group: dict[str, Any], bucket: Bucket, step: Tensor, reduction: int
) -> list[Tensor]:
    """What the first phase of a two-phase step traces: the partial sums of the chain's group reduction
    number ``reduction`` over one bucket (Prodigy's ``<g, x0 - x>`` and ``||s||_1``), before any parameter
    moves (:meth:`RuleOptimizer._bucket_sums`)."""
    return list(optimizer._bucket_sums(group, bucket, step, reduction))


@functools.cache
def _compiler(traced: Callable[..., Any]) -> Any:
    """``traced`` (:func:`_bucket_update` or :func:`_bucket_sums`) under ``torch.compile`` with the hoisting
    backend, built on first use: importing dynamo and inductor costs 1.2-1.6 s, which a process that never
    compiles does not pay."""
    from descentlab.optim._hoisting import hoisting_inductor

    # Static shapes: a bucket's shapes are fixed for a training run, and inductor then emits one loop per
    # group of equal-sized tensors (dynamic shapes would give every tensor its own loop and size guards).
    return torch.compile(traced, backend=hoisting_inductor, fullgraph=True, dynamic=False)


class _Twin:
    """Mixed into a class's twin: pickled as :func:`_twin` of the class (an entry's guards are saved
    with the objects they read), shown by name (torch's ``__repr__`` reads the absent param groups)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _twin, (type(self).__mro__[2],)

    def __repr__(self) -> str:
        return f"twin of {type(self).__mro__[2].__name__}"


@functools.cache
def _twin(cls: type[RuleOptimizer]) -> RuleOptimizer:
    """An instance of ``cls`` without groups or state: what the traced update calls ``_apply`` on.

    ``_apply`` reads only the class's declarations; dynamo guards the instance by identity, so one twin
    per class lets every optimizer of the class share the compiled entries. Its class derives from
    ``cls`` (same declarations) so that it pickles by reference.
    """
    name = f"{cls.__name__}Twin"
    namespace = {"__module__": __name__, "__qualname__": name, "hyperparameters": cls.hyperparameters}
    twin_class = type(name, (_Twin, cls), namespace)
    return twin_class.__new__(twin_class)


def kernel_takes(optimizer: RuleOptimizer, bucket: Bucket) -> bool:
    """Whether the kernel may take ``bucket`` (from :meth:`Bucket.traceable`): its class compiled
    before, and it holds at least :data:`MIN_NUMEL` elements (a smaller one runs eagerly, in
    microseconds, where a compile would cost seconds)."""
    return type(optimizer).__name__ not in _unavailable and _at_least(bucket.params, MIN_NUMEL)


class KernelCall:
    """The generated kernel for the buckets of one group's step: what every call shares (the class's
    twin, the traced group, whether inductor's caches are on), made once and not for each part of a
    bucket (:mod:`descentlab.optim._parts`; about 35 us a call on the lab's CPU)."""

    def __init__(self, optimizer: RuleOptimizer, group: dict[str, Any]) -> None:
        self.cls = type(optimizer)
        self.name = self.cls.__name__
        self.shared = {"optimizer": _twin(self.cls), "group": _traced_group(optimizer, group)}
        self.group = group
        self.constants = tuple(part.kernel_constants for part in self.cls.chain if part.kernel_constants)
        self.through_dynamo = _precompiled.caches_disabled()

    def run(
        self, bucket: Bucket, step: int, counts: list[Tensor], averaging: Averaging | None = None
    ) -> list[Tensor] | None:
        """Update ``bucket`` (step ``step``; ``counts``, its step counts, incremented) with the kernel, and
        the averages ``averaging`` has for all of its parameters; return the partial sums the chain took
        (empty where it takes none), or ``None`` where it cannot run: the eager path must run instead (and
        the averages are left to the wrapper).

        The first call of a configuration compiles it (or loads it from disk). Entries are limited to
        :data:`RECOMPILE_LIMIT`; a failure now warns once and returns ``False`` too (a compile error is
        raised before the kernel writes anything).
        """
        arguments = {**self._arguments(bucket, step), "counts": counts}
        averaged, averages = averaging.of(bucket.params) if averaging is not None else ((), [])
        if averaging is not None and averaged:
            # A tensor weight, as lr is: SWA's 1 / (n + 1) changes at every step without a recompile.
            weight = _as_scalar_tensor(averaging.weight)
            arguments.update(averages=averages, averaged=averaged, weight=weight)
        elif not bucket.state:
            return None  # a stateless update (plain SGD) is one kernel already; it comes for an average
        result = self._call(_bucket_update, bucket, arguments)
        if result is _NOT_RUN:
            return None
        if averaging is not None:
            averaging.done(bucket.params, averaged)
        return list(result or ())

    def sums(self, bucket: Bucket, step: int, reduction: int) -> list[Tensor] | None:
        """The partial sums of group reduction ``reduction`` over ``bucket`` (the first phase of the step)
        from a kernel of their own, or ``None`` where it cannot run (the eager sums must run instead)."""
        arguments = {**self._arguments(bucket, step), "reduction": reduction}
        result = self._call(_bucket_sums, bucket, arguments)
        return None if result is _NOT_RUN else result

    def _arguments(self, bucket: Bucket, step: int) -> dict[str, Any]:
        arguments = {
            **self.shared,
            "bucket": bucket,
            "step": torch.full((len(bucket.params),), float(step), dtype=torch.float64),
        }
        if self.constants:  # read from this part's state now: the kernel is specialised on them
            group = dict(arguments["group"])
            for constants in self.constants:
                group.update(constants(self.group, bucket.state))
            arguments["group"] = group
        return arguments

    def _call(self, traced: Callable[..., Any], bucket: Bucket, arguments: dict[str, Any]) -> Any:
        """``traced``'s compiled entry called with ``arguments``: its result, or ``_NOT_RUN``."""
        name = self.name
        if name in _unavailable:
            return _NOT_RUN
        try:
            if self.through_dynamo:
                result = _through_dynamo(traced, name, bucket, arguments)
            else:
                entry = _entry(self.cls, traced, bucket, arguments)
                if entry is None:
                    return _NOT_RUN
                result = entry.fn(**arguments)
        except Exception as error:  # no compiler, or a chain the compiler cannot trace: eager
            _unavailable.add(name)
            first_line = str(error).splitlines()[0] if str(error) else ""
            warnings.warn(
                f"{name}(compiled=True): the generated kernel could not be built "
                f"({type(error).__name__}: {first_line}); running the eager path instead",
                RuntimeWarning,
                stacklevel=5,
            )
            return _NOT_RUN
        global kernel_calls
        kernel_calls += 1
        return result


def _entry(
    cls: type[RuleOptimizer], traced: Callable[..., Any], bucket: Bucket, arguments: dict[str, Any]
) -> Any:
    """The compiled entry whose guards admit ``arguments``: one of this process's, else the one saved on
    disk for them, else a new compile (reported, and saved); ``None`` past :data:`RECOMPILE_LIMIT`.

    The guards are dynamo's own (every tensor's dtype, device, shape and strides, every constant
    hyperparameter; ~0.45 ms for 984 tensors), checked here as dynamo checks its cache; a passing entry's
    transformed bytecode then calls its compiled graph directly, without dynamo's frame hook (~0.7 ms a
    step on 196 tensors). Entries are compiled ahead of time (``aot_compile``), which keeps only the
    guards that can be saved: not those on global state such as grad mode, so the engine calls the
    kernel only with grad disabled (the non-differentiable step).
    """
    global compiled_entries, loaded_entries
    entries = _entries.setdefault((cls, traced.__name__), [])
    for entry in reversed(entries):
        if entry.admits(arguments):
            return entry
    if sum(map(len, _entries.values())) >= RECOMPILE_LIMIT:
        if cls.__name__ not in _over_the_limit:
            _over_the_limit.add(cls.__name__)
            warnings.warn(
                f"{cls.__name__}(compiled=True): {RECOMPILE_LIMIT} generated kernels compiled in this "
                "process (shapes or constant hyperparameters that keep changing); running the eager path "
                "for new ones",
                RuntimeWarning,
                stacklevel=5,
            )
        return None
    path = _precompiled.entry_path(cls, arguments)
    compiled = _precompiled.load(path, _bucket_update.__globals__)
    if compiled is not None and compiled.guard_check(**arguments):
        loaded_entries += 1
    else:
        with _CompileReport(cls.__name__, bucket, traced), remembered_probes():
            compiled = _aot_compile(traced, arguments)
        compiled_entries += 1
        _precompiled.save(compiled, path)
    entry = _Entry(compiled)
    entries.append(entry)
    return entry


class _Entry:
    """A compiled entry (dynamo's ``AOTCompiledFunction``) whose guards are checked without its
    ``guard_check``'s ``inspect.Signature.bind`` (about 20 us a call, as long as the guards of 96 tensors
    take): :meth:`admits` hands the guard manager the frame's locals, built from the traced function's
    parameters in their order with their defaults, as ``bind`` and ``apply_defaults`` would. Where the
    entry does not have the parts this needs (another torch, a closure), it calls ``guard_check``."""

    __slots__ = ("_check", "_parameters", "compiled", "fn")

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.fn = compiled.fn
        artifacts = getattr(compiled, "_artifacts", None)
        check = getattr(getattr(artifacts, "guard_manager", None), "check", None)
        parameters = getattr(getattr(artifacts, "signature", None), "parameters", {})
        plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        closure = getattr(getattr(artifacts, "runtime_env", None), "closure", True)
        usable = check is not None and not closure and all(p.kind in plain for p in parameters.values())
        self._check = check if usable and parameters else None
        self._parameters = tuple((name, parameter.default) for name, parameter in parameters.items())

    def frame_locals(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The locals the guards read for a call with ``arguments`` (by keyword)."""
        return {name: arguments.get(name, default) for name, default in self._parameters}

    def admits(self, arguments: dict[str, Any]) -> bool:
        """Whether the entry's guards pass for a call with ``arguments``."""
        if self._check is None:
            return bool(self.compiled.guard_check(**arguments))
        return bool(self._check(self.frame_locals(arguments)))


def _through_dynamo(traced: Callable[..., Any], name: str, bucket: Bucket, arguments: dict[str, Any]) -> Any:
    """The kernel called through dynamo, which compiles where no entry of its own admits the call: for
    a process with inductor's caches off (``TORCHINDUCTOR_FORCE_DISABLE_CACHES=1``), in which dynamo
    refuses to compile ahead of time. Each call pays dynamo's frame hook (~0.7 ms on 196 tensors)."""
    limit = torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT)
    with _CompileReport(name, bucket, traced), remembered_probes(), limit:
        return _compiler(traced)(**arguments)


def _aot_compile(traced: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    """dynamo's ahead-of-time compile of ``traced`` (:func:`_bucket_update`, :func:`_bucket_sums`) for
    ``arguments``.

    dynamo traces each 0-d float64 CPU input's ``item()`` as a symbolic float, which inductor's
    ``tensorify_python_scalars`` pass then specialises by restarting the trace, even where nothing reads
    it. The hyperparameters are passed in shape ``(1,)`` for that reason (:func:`_as_scalar_tensor`), but
    a float64 model's step counts are 0-d float64 state: ``torch.compile`` restarts by itself,
    ``aot_compile`` raises, so the compile is run again (dynamo keeps what to specialise between the
    attempts) and the record is cleared after, as dynamo's own compile does.
    """
    from torch._dynamo.exc import TensorifyScalarRestartAnalysis
    from torch._dynamo.symbolic_convert import TensorifyState

    global traces
    compiler = _compiler(traced)
    try:
        for _ in range(_TRACE_ATTEMPTS - 1):
            traces += 1
            try:
                return compiler.aot_compile(((), arguments))
            except TensorifyScalarRestartAnalysis:
                continue
        traces += 1
        return compiler.aot_compile(((), arguments))
    finally:
        TensorifyState.clear()


def _at_least(tensors: list[Tensor], numel: int) -> bool:
    """Whether ``tensors`` hold at least ``numel`` elements (stops counting there: a large model's first
    tensor usually answers)."""
    total = 0
    for tensor in tensors:
        total += tensor.numel()
        if total >= numel:
            return True
    return False


class _CompileReport:
    """Around a compile: a notice once it has run :data:`REPORT_AFTER_S` seconds, and its time when it
    ends (if it ran that long)."""

    def __init__(self, name: str, bucket: Bucket, traced: Callable[..., Any] = _bucket_update) -> None:
        params = bucket.params
        numel = sum(param.numel() for param in params)
        where = f"{numel:,} elements, {str(params[0].dtype).removeprefix('torch.')}, {params[0].device}"
        what = f"a bucket of {len(params)} tensors ({where})"
        if bucket.part_of:
            where += f"; one part of a {bucket.part_of}-tensor bucket called in parts of its repeated layers"
            what = f"{len(params)} tensors ({where})"
        kernel = "the generated kernel" + (" of the group sums" if traced is _bucket_sums else "")
        self.what = f"{name}(compiled=True): {kernel} for {what}"
        self.timer = threading.Timer(REPORT_AFTER_S, self._notice)
        self.timer.daemon = True

    def _notice(self) -> None:
        logger.warning(
            "%s is compiling (%.0f s so far); a cold compile of many tensors can take minutes on a small "
            "CPU, and later processes load the result from inductor's cache folder (TORCHINDUCTOR_CACHE_DIR) "
            "in about a second",
            self.what,
            time.perf_counter() - self.start,
        )

    def __enter__(self) -> _CompileReport:
        self.start = time.perf_counter()
        self.timer.start()
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        self.timer.cancel()
        elapsed = time.perf_counter() - self.start
        if error_type is None and elapsed >= REPORT_AFTER_S:
            logger.warning("%s is ready after %.1f s (compiled anew, and saved)", self.what, elapsed)


def _traced_group(optimizer: RuleOptimizer, group: dict[str, Any]) -> dict[str, Any]:
    """``group`` as the kernel sees it: no parameter list; ``lr``, the hyperparameters the chain
    declares as possibly tensors (Adam's ``betas``) and the numeric group-level state (Schedule-Free's
    ``k``, ``scheduled_lr``, ``lr_max``, ``weight_sum``, advanced on the host before the kernel runs) as
    float64 tensors, so a scheduler that changes them, or a step that advances them, causes no recompile.
    The other hyperparameters and flags (``train_mode``) are constants of the kernel (a change
    recompiles)."""
    traced = {key: value for key, value in group.items() if key != "params"}
    for declaration in optimizer.group_state_declarations:
        value = traced.get(declaration.name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            traced[declaration.name] = _as_scalar_tensor(float(value))
    for key in _tensor_keys(type(optimizer)):
        value = traced.get(key)
        if isinstance(value, (tuple, list)):
            traced[key] = tuple(_as_scalar_tensor(item) for item in value)
        elif value is not None:
            traced[key] = _as_scalar_tensor(value)
    return traced


@functools.cache
def _tensor_keys(cls: type[RuleOptimizer]) -> tuple[str, ...]:
    """``lr`` and every hyperparameter of ``cls``'s chain annotated as accepting a tensor."""
    from descentlab.optim._transform import declared_hyperparameters

    parts = [*cls.chain, *([cls.evaluation_point] if cls.evaluation_point else [])]
    declared = declared_hyperparameters(parts)
    return ("lr", *(name for name, hyper in declared.items() if "Tensor" in (hyper.annotation or "")))


def _as_scalar_tensor(value: float | Tensor) -> Tensor:
    """``value`` as a 1-element float64 tensor of shape ``(1,)``, which :func:`step_scalar` reshapes to
    0-d inside the graph. Not 0-d: dynamo gives every 0-d float64 CPU input a symbolic ``item()`` value,
    and inductor's ``tensorify_python_scalars`` pass then restarts the whole trace to specialise it (a
    wasted first trace, 6.5 of 36 s of a 196-tensor Adam compile; see :func:`_aot_compile`)."""
    if isinstance(value, Tensor):
        return value.detach().to(torch.float64).reshape(1)
    return torch.full((1,), value, dtype=torch.float64)  # half of torch.tensor([value])'s time
