"""The inductor side of the generated kernel (:mod:`descentlab.optim._generated`): the backend that
compiles a bucket's traced update with the scalar values hoisted out of its loops.

Imported only when a kernel is compiled, since it imports inductor (and dynamo with it).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch._inductor.custom_graph_pass import CustomGraphPass

# Where dynamo's placeholders for the bucket's tensors come from (the argument of _generated._bucket_update),
# and how dynamo names them where the placeholder does not record its source (an ahead-of-time compile);
# every other tensor input is a scalar: the step counts, lr, tensor hyperparameters.
_BUCKET_SOURCE = "L['bucket']"
_BUCKET_PLACEHOLDER = "l_bucket_"
# Views pass a hoisted scalar on unchanged: the value to materialise is the one they view.
_VIEWS = {"unbind", "select", "unsqueeze", "squeeze", "view", "expand", "slice", "reshape", "alias"}


class HoistScalars(CustomGraphPass):
    """Inductor post-grad pass: materialise every value computed from the scalar inputs alone.

    Run on the functional (post-grad) graph, where every node but the final ``copy_`` back into the
    inputs is pure, so a value that depends only on scalar inputs may be computed before everything
    else. Each such value that the elementwise part reads is marked for realisation
    (``inductor_realize_to_strides``, inductor's own flag): it becomes a buffer written by a small
    kernel, and the loops load it instead of recomputing it per vector.
    """

    def __init__(self, scalar_inputs: frozenset[int]) -> None:
        self.scalar_inputs = scalar_inputs  # positions of the scalar placeholders

    def __call__(self, graph: torch.fx.Graph) -> None:
        scalar: set[torch.fx.Node] = set()
        placeholders = [node for node in graph.nodes if node.op == "placeholder"]
        scalar.update(node for index, node in enumerate(placeholders) if index in self.scalar_inputs)
        for node in graph.nodes:
            inputs = node.all_input_nodes
            if node.op == "call_function" and _is_pure(node) and inputs and all(i in scalar for i in inputs):
                scalar.add(node)
        for node in scalar:
            if node.op == "placeholder" or not any(user not in scalar for user in node.users):
                continue
            while _op_name(node) in _VIEWS or node.target is operator.getitem:
                node = node.args[0]
            if node.op == "call_function" and isinstance(node.meta.get("val"), Tensor):
                node.meta["inductor_realize_to_strides"] = True

    def uuid(self) -> str:
        """Inductor's cache key for this pass: its source, the scalar positions and the lowering's patch
        (:func:`_realizing_live_readers_only`)."""
        parts = (
            HoistScalars,
            _is_pure,
            _op_name,
            _realizing_live_readers_only,
            _no_barriers_between_independent_loops,
            _BarrierPlan,
        )
        source = "".join(inspect.getsource(part) for part in parts)
        return hashlib.sha256(f"{source}{sorted(self.scalar_inputs)}".encode()).hexdigest()


def _op_name(node: torch.fx.Node) -> str:
    """The aten op name of ``node`` (``"unbind"`` for ``aten.unbind.int``), or ``""``."""
    schema = getattr(node.target, "_schema", None)
    return schema.name.split("::")[-1] if schema is not None else ""


def _is_pure(node: torch.fx.Node) -> bool:
    """Whether ``node`` computes a value without writing any of its inputs (never a ``copy_``)."""
    if node.target is operator.getitem:
        return True
    schema = getattr(node.target, "_schema", None)
    return schema is not None and not schema.is_mutable


def hoisting_inductor(graph_module: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
    """dynamo backend: inductor with :class:`HoistScalars` told which inputs are scalars."""
    compile_fx = _compile_fx()

    placeholders = [node for node in graph_module.graph.nodes if node.op == "placeholder"]
    scalars = frozenset(
        index
        for index, node in enumerate(placeholders)
        if isinstance(node.meta.get("example_value"), Tensor) and not _from_bucket(node)
    )
    patches = {
        "post_grad_custom_post_pass": HoistScalars(scalars),
        # No size asserts: with static shapes dynamo's guards have checked every input's sizes and strides
        # before the call, and the wrapper's re-check cost ~0.4 ms a step for a 196-tensor bucket.
        "size_asserts": False,
        # At most 4 equal-sized tensors share a loop (inductor's default is 16): a loop over 16 of Adam's
        # tensors reads and writes 112 streams at once, and on a 2-core AMD EPYC the 196-tensor step was
        # 1.28-1.30x torch's fused Adam with 16 and 1.04-1.07x with 4 (paired medians).
        "cpp.max_horizontal_fusion_size": 4,
        # Fewer fusion candidates tried per shared buffer (default 64): the hoisted scalars are read by
        # every loop, so every node shares a buffer; the 196-tensor cold compile 66 -> 52 s, same loops.
        "max_fusion_buffer_group_pairwise_attempts": 16,
        # A value read by two loops is recomputed in the second, not stored in a temporary buffer (inductor
        # stores one that reads over 4 buffers): LAMB's update feeds its norm and the step, and the 4 B/param
        # temporary, allocated at every step with its page faults, made LAMB on 4 x 25M 207 ms, not 120.
        # Adam's and NAdam's 196-tensor cold compiles were 5-20% shorter with it, their steps the same.
        "realize_reads_threshold": 64,
    }
    with _realizing_live_readers_only(), _no_barriers_between_independent_loops():
        return compile_fx(graph_module, example_inputs, config_patches=patches)


@contextlib.contextmanager
def _realizing_live_readers_only() -> Iterator[None]:
    """Within the block, inductor's lowering realises, before an input buffer is written, only those of
    its readers that a node still to be lowered uses.

    Inductor's ``GraphLowering.mark_buffer_mutated`` realises every value ever lowered that reads the old
    version of the buffer, so that none reads the new one. In a bucket's update the writes (``copy_``
    back into the parameter and its state) come last, and every intermediate of the chain reads those
    inputs, so each became a buffer of its own: 13 scheduler nodes a tensor for Adam instead of about 6.
    The other readers are dead: the lowering's environment no longer holds them (an ``fx.Interpreter``
    drops a value after its last use). They were inlined into the later values that read them. Those
    later values are readers of the buffer too, and are realised here when still live, so what any
    kernel reads is unchanged. Measured on AdamW over 196 tensors: cold compile 33.7 -> 27.8 s.
    """
    from torch._inductor.graph import GraphLowering

    original = GraphLowering.mark_buffer_mutated

    def mark_buffer_mutated(self: GraphLowering, name: str) -> None:
        self.mutated_buffers.add(name)
        readers = self.name_to_users.get(name)
        if not readers:
            return
        live = {id(value) for value in _flattened(self.env.values())}
        for reader in readers:
            if id(reader) in live:
                reader.realize()

    GraphLowering.mark_buffer_mutated = mark_buffer_mutated
    try:
        yield
    finally:
        GraphLowering.mark_buffer_mutated = original


@contextlib.contextmanager
def _no_barriers_between_independent_loops() -> Iterator[None]:
    """Within the block, inductor's C++ kernels let a thread go on to the next loop of a parallel region
    without waiting for the others (``nowait``) where that loop depends on none still running.

    Inductor emits each fused node of a kernel as one work-sharing loop (``#pragma omp for``, or
    ``#pragma omp single`` for a small one) of one OpenMP parallel region, and each ends with a barrier.
    A bucket's update is one loop per group of tensors, and no tensor's loop reads what another writes, so
    on 196 tensors the threads met at 194 barriers per step; most loops are small, one thread runs each
    ``single`` loop while the other waits. A barrier is kept exactly where a loop depends (by inductor's
    own dependency analysis, the scheduler nodes' ancestors) on a loop since the last barrier kept, and
    after any code that is not one plain elementwise loop (see :class:`_BarrierPlan`). The region's end
    is a barrier anyway. Measured over 196 tensors: Adagrad's kernel alone 0.93-0.97x its time with them
    (AMD EPYC); whole steps / torch's fused step, without -> with, Adagrad 1.04 -> 0.99, AdamW 1.01 -> 0.99,
    Adam(amsgrad) 1.01 -> 0.99, Adam 0.97 -> 0.98 (Intel Xeon, two runs; ``generated_kernel.md``).
    """
    from torch._inductor.codegen.cpp import KernelGroup

    original = KernelGroup.finalize_kernel

    def finalize_kernel(self: KernelGroup, new_kernel: Any, nodes: list[Any]) -> None:
        lines = self.loops_code._lines
        start = len(lines)
        original(self, new_kernel, nodes)
        plan = self.__dict__.setdefault("_descentlab_barriers", _BarrierPlan(lines))
        plan.add(start, nodes)

    KernelGroup.finalize_kernel = finalize_kernel
    try:
        yield
    finally:
        KernelGroup.finalize_kernel = original


class _BarrierPlan:
    """Which work-sharing loops of a kernel's parallel regions end without a barrier (see
    :func:`_no_barriers_between_independent_loops`); edits the kernel's lines as each loop is added.

    Only a plain loop ends without one: a fused node emitted as exactly one work-sharing construct, with
    nothing before or after it but the braces of its region, and no reduction among its nodes.
    """

    _SHARED = ("#pragma omp for", "#pragma omp single")
    _PARALLEL = "#pragma omp parallel"
    _AROUND_REGIONS = ("{", "}", "int tid = omp_get_thread_num();")

    def __init__(self, lines: list[Any]) -> None:
        self.lines = lines
        self.pending: set[str] = set()  # the operations run since the last barrier of this region
        self.last: int | None = None  # the line of the latest loop made to end without a barrier

    def add(self, start: int, nodes: list[Any]) -> None:
        """Plan the loop that ``nodes`` were emitted as, from line ``start`` of the kernel's lines."""
        chunk = [line.strip() if isinstance(line, str) else "" for line in self.lines[start:]]
        if any(line.startswith(self._PARALLEL) for line in chunk):
            self.pending, self.last = set(), None  # a region begins: the threads have all met
        shared = [index for index, line in enumerate(chunk) if line.startswith(self._SHARED)]
        plain = (
            len(shared) == 1
            and all(map(self._around_regions, chunk[: shared[0]]))
            and all(map(self._around_regions, self._after_the_loop(chunk[shared[0] + 1 :])))
            and not any(node.is_reduction() for node in nodes)
        )
        ancestors = set().union(*(node.ancestors for node in nodes))
        if not plain or ancestors & self.pending:
            self._keep_last_barrier()
        if plain:
            self.last = start + shared[0]
            pragma = chunk[shared[0]]
            self.lines[self.last] = self.lines[self.last].replace(pragma, f"{pragma} nowait")
            self.pending.update(node.get_name() for node in nodes)

    def _around_regions(self, line: str) -> bool:
        """Whether ``line`` opens or closes a parallel region (the only code around a plain loop)."""
        return line.startswith(self._PARALLEL) or line in self._AROUND_REGIONS

    @staticmethod
    def _after_the_loop(lines: list[str]) -> list[str]:
        """The lines after the statement that begins ``lines`` (the work-sharing loop), by brace depth;
        all of them where the statement does not end (then the loop is not plain)."""
        depth, opened = 0, False
        for index, line in enumerate(lines):
            depth += line.count("{") - line.count("}")
            opened = opened or depth > 0
            if opened and depth <= 0:
                return lines[index + 1 :]
        return lines or [""]

    def _keep_last_barrier(self) -> None:
        if self.last is not None:
            self.lines[self.last] = self.lines[self.last].replace(" nowait", "")
        self.pending, self.last = set(), None


def _flattened(values: Iterable[Any]) -> Iterator[Any]:
    """``values`` with lists and tuples (a foreach op's outputs) opened, recursively."""
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from _flattened(value)
        else:
            yield value


def _from_bucket(placeholder: torch.fx.Node) -> bool:
    """Whether dynamo's ``placeholder`` stands for a tensor of the bucket (by its source, else its name)."""
    argument = placeholder.meta.get("grapharg")
    if argument is not None and argument.source is not None:
        return argument.source.name.startswith(_BUCKET_SOURCE)
    return placeholder.name.startswith(_BUCKET_PLACEHOLDER)


@functools.cache
def _compile_fx() -> Callable[..., Any]:
    """Inductor's ``compile_fx``, imported with its kernel templates left uncompiled until first used.

    Importing it defines inductor's GPU matmul and attention templates, and each compiles its jinja2
    source at definition: 23 templates, ~0.2 s of a 2.4 s first step in a fresh process (0.4 s under
    cProfile), none of them used by an elementwise CPU kernel. Imported here first, each becomes a
    :class:`_LazyTemplate`, compiled the first time something renders it. Where inductor was imported
    before, nothing changes.
    """
    with _lazy_kernel_templates():
        from torch._inductor.compile_fx import compile_fx
    return compile_fx


class _LazyTemplate:
    """A jinja2 template compiled from its source on first use; otherwise the template itself."""

    def __init__(self, compile_template: Callable[[str], Any], source: str) -> None:
        self._compile = compile_template
        self._source = source
        self._template: Any = None

    def _compiled(self) -> Any:
        if self._template is None:
            self._template = self._compile(self._source)
        return self._template

    def render(self, *args: Any, **kwargs: Any) -> str:
        """The compiled template's ``render``."""
        return self._compiled().render(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._compiled(), name)


@contextlib.contextmanager
def _lazy_kernel_templates() -> Iterator[None]:
    """Within the block, inductor's templates (``KernelTemplate._template_from_string``) compile lazily.

    Left alone where this torch has no such method or no jinja2 (then inductor returns ``None``, and its
    templates say they need jinja2, as without the block)."""
    from torch._inductor.codegen import common

    template_class = getattr(common, "KernelTemplate", None)
    original = getattr(template_class, "_template_from_string", None)
    if original is None or common.jinja2_env() is None:
        yield
        return

    def lazy(source: str) -> _LazyTemplate:
        return _LazyTemplate(original, source)

    template_class._template_from_string = staticmethod(lazy)
    try:
        yield
    finally:
        template_class._template_from_string = staticmethod(original)
