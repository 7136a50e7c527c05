"""The generated one-pass path of an elementwise chain: one compiled call per bucket, scalars hoisted.

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
  EPYC; with 4 it is 1.04-1.07x (``cpp.max_horizontal_fusion_size``, set in :mod:`._hoisting`).
- **No size asserts.** Shapes are static, so dynamo's guards have checked every input's sizes and
  strides before the call; inductor's wrapper re-checking them cost ~0.4 ms a step on 196 tensors.
- **Cheap calls.** The traced function receives the optimizer class's stateless twin (one per class, see
  :func:`_twin`), a plain dict of the group's hyperparameters and the bucket, never the optimizer itself:
  dynamo guards an optimizer by identity, so every new optimizer instance retraced. Once compiled, a call
  does not enter dynamo (:func:`_replay`): dynamo's own guards of its cached entry are checked and the
  entry's bytecode is run directly, which saves about 0.7 ms of frame hook and wrappers a step on 196
  tensors; a guard that fails (a changed constant, other strides) goes through dynamo, which recompiles.

Only chains that declare themselves elementwise and have state run here, over whole tensors (a DTensor as
its local shard; :meth:`Bucket.traceable`); a state created on first use (SGD's first momentum buffer)
and plain SGD (one kernel already) take the eager path. Shapes are static: one compiled entry per
(class, variant, dtype, flags, bucket shapes), so a model compiles once; inductor's caches make the first
step of a later process take seconds, not a minute. Construction and first step of one 1024 x 1024 tensor
in a fresh process take 2.2 s on a 2-core AMD EPYC against 1.0-1.2 s for torch's fused Adam (both import
dynamo, ~1 s, which torch's ``Optimizer`` constructor does; importing inductor's compiler, dynamo's trace
and loading the cached graph are the rest, above the 2 s aimed at). Three costs of that step are cut:
inductor's checks of the CPU's vector ISAs, ten probe subprocesses per process, are remembered from the
first process on the machine (3-4 s on an Intel Xeon), as is its validation of the precompiled C++ header
(a ``g++ -E`` per process, ~0.15 s; both :mod:`descentlab.optim._remembered_probes`), and inductor's GPU
kernel templates are compiled from jinja2 only when first rendered, not at its import (~0.2 s;
:func:`descentlab.optim._hoisting._compile_fx`). A cold compile grows with the bucket's tensor count
(seconds for a few large tensors, about a minute for a 196-tensor transformer on 2 cores), which is why
this path is an opt-in; ``benchmarks/results/generated_kernel.md`` has the measured speeds and times.
A compile that runs longer than :data:`REPORT_AFTER_S` is reported on the ``descentlab.optim`` logger
(a warning, so it shows without any logging set up): once while it runs, and once when it ends, with
its time and whether inductor's cache served it. Without a working compiler (inductor needs a C++
compiler on the CPU) the eager path runs, after a one-time warning.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import logging
import threading
import time
import types
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from descentlab.optim._remembered_probes import remembered_probes

if TYPE_CHECKING:
    from descentlab.optim._bucket import Bucket
    from descentlab.optim._engine import RuleOptimizer

# Every (class, variant, dtype, flags, shapes) is one compiled entry of the one traced function below;
# torch's default limit of 8 entries per function would send the ninth configuration of a process to eager.
RECOMPILE_LIMIT = 256
# A bucket of fewer elements than this takes the eager path: its step costs microseconds either way, and
# a compile would cost seconds (the lab's 2-D problems and tiny models).
MIN_NUMEL = 1 << 14

# A compile (a dynamo call that no cached entry's guards admit) that takes longer than this many seconds
# is reported while it runs and when it ends (a warm first step in a fresh process takes 4-5 s here).
REPORT_AFTER_S = 10.0
logger = logging.getLogger("descentlab.optim")

_unavailable: set[str] = set()  # classes whose compilation failed: eager from then on (warned once)
kernel_calls = 0  # buckets updated by the compiled kernel in this process (read by the tests)
replayed_calls = 0  # of which run without entering dynamo (see _replay; read by the tests)


def _bucket_update(
    optimizer: RuleOptimizer, group: dict[str, Any], bucket: Bucket, step: Tensor, counts: list[Tensor]
) -> None:
    """What is traced: the engine's update of one bucket (the single source of the algorithm's math),
    and the increment of its parameters' step counts (``counts``; the new count is ``step``)."""
    if counts:
        torch._foreach_add_(counts, 1)
    optimizer._apply(group, bucket, step)


@functools.cache
def _compiled_bucket_update() -> Callable[..., None]:
    """:func:`_bucket_update` under ``torch.compile`` with the hoisting backend, built on first use:
    importing dynamo and inductor costs 1.2-1.6 s, which a process that never compiles does not pay."""
    from descentlab.optim._hoisting import hoisting_inductor

    # Static shapes: a bucket's shapes are fixed for a training run, and inductor then emits one loop per
    # group of equal-sized tensors (dynamic shapes would give every tensor its own loop and size guards).
    return torch.compile(_bucket_update, backend=hoisting_inductor, fullgraph=True, dynamic=False)


@functools.cache
def _twin(cls: type[RuleOptimizer]) -> RuleOptimizer:
    """An instance of ``cls`` without groups or state: what the traced update calls ``_apply`` on.

    ``_apply`` reads only the class's declarations; dynamo guards the instance by identity, so one twin
    per class lets every optimizer of the class share the compiled entries.
    """
    return cls.__new__(cls)


def run_generated(
    optimizer: RuleOptimizer, group: dict[str, Any], bucket: Bucket, step: int, counts: list[Tensor]
) -> bool:
    """Update ``bucket`` (from :meth:`Bucket.traceable`) with the compiled kernel and increment
    ``counts`` (its parameters' step tensors, one less than ``step``); ``False``: nothing run.

    ``False`` (nothing updated) where this class's compilation failed before; a failure now warns once
    and returns ``False`` too (a compile error is raised before the kernel writes anything).
    """
    name = type(optimizer).__name__
    if name in _unavailable or not _at_least(bucket.params, MIN_NUMEL):
        return False
    arguments = {
        "optimizer": _twin(type(optimizer)),
        "group": _traced_group(optimizer, group),
        "bucket": bucket,
        "step": torch.full((len(bucket.params),), float(step), dtype=torch.float64),
        "counts": counts,
    }
    try:
        replay = _replay(arguments)
        if replay != "replayed":
            report = _CompileReport(name, bucket) if replay == "compile" else contextlib.nullcontext()
            limit = torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT)
            with report, remembered_probes(), limit:
                _compiled_bucket_update()(**arguments)
    except Exception as error:  # no compiler, or a chain the compiler cannot trace: eager
        _unavailable.add(name)
        first_line = str(error).splitlines()[0] if str(error) else ""
        warnings.warn(
            f"{name}(compiled=True): the generated kernel could not be built "
            f"({type(error).__name__}: {first_line}); running the eager path instead",
            RuntimeWarning,
            stacklevel=4,
        )
        return False
    global kernel_calls
    kernel_calls += 1
    return True


def _at_least(tensors: list[Tensor], numel: int) -> bool:
    """Whether ``tensors`` hold at least ``numel`` elements (stops counting there: a large model's first
    tensor usually answers)."""
    total = 0
    for tensor in tensors:
        total += tensor.numel()
        if total >= numel:
            return True
    return False


def _replay(arguments: dict[str, Any]) -> str:
    """Run dynamo's compiled entry for ``arguments`` without entering dynamo, if there is one to run so.

    Returns ``"replayed"`` (it ran), ``"compile"`` (no cached entry's guards admit ``arguments``: dynamo
    will compile) or ``"dynamo"`` (an entry admits them but must run through dynamo, or this torch lacks
    the hooks: dynamo decides).

    Entering a ``torch.compile``'d function costs about 1 ms on a 196-tensor bucket before its graph
    runs (dynamo's frame hook, the config patch, its wrappers), besides the guards. Here dynamo's own
    cache is searched as dynamo searches it: each entry's own guard manager checks ``arguments`` (every
    tensor's dtype, device, shape and strides, every constant hyperparameter, grad mode; ~0.45 ms for
    984 tensors), and the first entry whose guards pass runs its own transformed bytecode, which calls
    its compiled graph. Only an entry whose bytecode does nothing else (:func:`_replay_function`) is
    run so; otherwise, where no guard passes (a recompile is due) or where this torch lacks these
    (private) hooks, the call goes through dynamo.
    """
    global replayed_calls
    try:
        entries = torch._dynamo.eval_frame._debug_get_cache_entry_list(_bucket_update.__code__)
    except AttributeError:  # another torch: dynamo's own call
        return "dynamo"
    for entry in entries:
        if entry.guard_manager.check(arguments):
            function = _replay_function(entry.code)
            if function is None:
                return "dynamo"
            function(**arguments)
            replayed_calls += 1
            return "replayed"
    return "compile"


class _CompileReport:
    """Around a compile: a notice once it has run :data:`REPORT_AFTER_S` seconds, and its time when it
    ends (if it ran that long), with whether inductor's caches served it."""

    def __init__(self, name: str, bucket: Bucket) -> None:
        params = bucket.params
        numel = sum(param.numel() for param in params)
        self.what = (
            f"{name}(compiled=True): the generated kernel for a bucket of {len(params)} tensors "
            f"({numel:,} elements, {str(params[0].dtype).removeprefix('torch.')}, {params[0].device})"
        )
        self.timer = threading.Timer(REPORT_AFTER_S, self._notice)
        self.timer.daemon = True

    def _notice(self) -> None:
        logger.warning(
            "%s is compiling (%.0f s so far); a cold compile of many tensors can take minutes on a small "
            "CPU, and inductor's cache (TORCHINDUCTOR_CACHE_DIR) lets later processes load it in seconds",
            self.what,
            time.perf_counter() - self.start,
        )

    def __enter__(self) -> _CompileReport:
        self.start = time.perf_counter()
        self.cache = _cache_counts()
        self.timer.start()
        return self

    def __exit__(self, error_type: type[BaseException] | None, *_: object) -> None:
        self.timer.cancel()
        elapsed = time.perf_counter() - self.start
        if error_type is not None or elapsed < REPORT_AFTER_S:
            return
        hits, misses = (now - before for now, before in zip(_cache_counts(), self.cache))
        served = (
            f"compiled anew: {misses} graph{'s' if misses > 1 else ''} not in inductor's cache"
            if misses
            else "loaded from inductor's cache"
            if hits
            else "inductor's cache not used"
        )
        logger.warning("%s is ready after %.1f s (%s)", self.what, elapsed, served)


def _cache_counts() -> tuple[int, int]:
    """Inductor's FX-graph and AOTAutograd cache hits, and FX-graph cache misses, so far."""
    counters = torch._dynamo.utils.counters
    hits = counters["inductor"]["fxgraph_cache_hit"] + counters["aot_autograd"]["autograd_cache_hit"]
    return hits, counters["inductor"]["fxgraph_cache_miss"]


# A transformed frame that only reads its arguments and calls one graph: its instructions (CPython
# 3.10-3.13), the attributes it may read (the bucket's lists; dynamo's profiler marks around the graph) and
# the globals (the graph; dynamo's utils module).
_READ_AND_CALL = frozenset(
    {
        *("RESUME", "NOP", "CACHE", "EXTENDED_ARG", "LOAD_CONST", "LOAD_GLOBAL", "LOAD_ATTR", "LOAD_METHOD"),
        *("LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_LOAD_FAST", "LOAD_FAST_AND_CLEAR", "STORE_FAST"),
        *("DELETE_FAST", "BINARY_SUBSCR", "COPY", "SWAP", "POP_TOP", "PUSH_NULL", "BUILD_LIST"),
        *("BUILD_TUPLE", "LIST_EXTEND", "LIST_APPEND", "PRECALL", "CALL", "CALL_FUNCTION", "CALL_METHOD"),
        *("KW_NAMES", "RETURN_VALUE", "RETURN_CONST"),
    }
)
_READABLE = frozenset(
    {"params", "grads", "state", "record_pregraph_bytecode_enter", "record_pregraph_bytecode_exit"}
)
_DYNAMO_UTILS = "__import_torch_dot__dynamo_dot_utils"
_replay_functions: dict[types.CodeType, Callable[..., None] | None] = {}


def _replay_function(code: types.CodeType) -> Callable[..., None] | None:
    """``code`` (a cache entry's transformed bytecode) as a function, if running it skips nothing.

    Calling it outside dynamo is what dynamo does once the guards pass, as long as the bytecode has no
    side effect of its own to replay: it only reads the bucket's lists, calls one compiled graph (and
    dynamo's profiler marks), stores nothing but its own locals.
    """
    known = _replay_functions.get(id(code))
    if known is not None and known[0] is code:
        return known[1]
    instructions = list(dis.get_instructions(code))
    names: dict[str, set[str]] = {instruction.opname: set() for instruction in instructions}
    for instruction in instructions:
        names[instruction.opname].add(str(instruction.argval))
    graphs = [name for name in names.get("LOAD_GLOBAL", ()) if name.startswith("__compiled_fn")]
    replayable = (
        set(names) <= _READ_AND_CALL
        and len(graphs) == 1
        and names.get("LOAD_GLOBAL", set()) <= {graphs[0], _DYNAMO_UTILS}
        and names.get("LOAD_ATTR", set()) | names.get("LOAD_METHOD", set()) <= _READABLE
        and not code.co_freevars
    )
    function = types.FunctionType(code, _bucket_update.__globals__) if replayable else None
    _replay_functions[id(code)] = (code, function)
    return function


def _traced_group(optimizer: RuleOptimizer, group: dict[str, Any]) -> dict[str, Any]:
    """``group`` as the kernel sees it: no parameter list; ``lr`` and the hyperparameters the chain
    declares as possibly tensors (Adam's ``betas``) as float64 tensors, so a scheduler that changes them
    causes no recompile. The other hyperparameters are constants of the kernel (a change recompiles)."""
    traced = {key: value for key, value in group.items() if key != "params"}
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
    return (
        value.detach().to(torch.float64)
        if isinstance(value, Tensor)
        else torch.tensor(value, dtype=torch.float64)
    )
