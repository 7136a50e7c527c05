"""The one engine behind every descentlab optimizer.

:class:`RuleOptimizer` is a real :class:`torch.optim.Optimizer` that executes a *declared* algorithm. An
algorithm class declares (see :mod:`descentlab.optim._transform`):

- ``chain``: a short tuple of transforms (:mod:`descentlab.optim._transforms`), each declaring its
  hyperparameters (defaults and checks), its state keys (torch's names, with initialisers whose shape
  may differ by tensor), its group-level state and whether it is elementwise;
- ``signature``: the constructor's arguments in torch's order, from which ``__init__`` and its
  ``inspect`` signature are generated (defaults come from the declarations; validation runs from them);
- ``weight_decay_placement``: ``"coupled"`` (L2 added to the gradient), ``"decoupled"`` (parameters
  shrunk by ``lr * weight_decay``), ``"flag"`` (decoupled when the group's ``decoupled_weight_decay``
  is true) or ``"none"``; ``schedule_multiplier_variants`` lists the variants whose decoupled decay is
  multiplied by the schedule multiplier ``lr / initial_lr`` (Loshchilov & Hutter's :math:`\\eta_t`);
- ``evaluation_point``: where the gradient is evaluated when that is not the iterate (Nesterov).

A transform that declares a :class:`~descentlab.optim._transform.GroupReduction` makes the step of a
group two-phase: first every bucket of the group adds its partial sums (before any parameter moves),
the engine totals them and the reduction writes the group state; then the buckets are updated.

The engine owns everything the transforms should not know about: param groups, lazy state creation from
the declarations (and group-level state, kept in the groups so torch's ``state_dict`` carries it),
closures, ``maximize``, weight-decay placement, the evaluation point, complex parameters (viewed as real
pairs), ``None`` gradients, buckets of tensors that share device, dtype, step and state layout (so
multi-tensor ``torch._foreach_*`` kernels see aligned lists even when state differs by tensor), the
``foreach=False`` loop, cache blocking (only for chains that declare themselves elementwise), and
applying the directions the chain returns (``param <- param - lr * direction``).

Every hyperparameter is read from ``param_groups`` at every step, so any scheduler (torch's or ours) that
writes ``lr``, ``momentum``, ``betas``, ``weight_decay``... into the groups drives the optimizer.

torch.optim's implementation flags, accepted wherever torch accepts them:

- ``fused=True``: where torch has a fused kernel for the algorithm (``fused_devices``) and the variant is
  ``"torch"``, the group runs that kernel through the algorithm's :meth:`RuleOptimizer.torch_step`, so the
  result is torch's exactly (``GradScaler`` then hands it the gradient scale); elsewhere the engine's own
  multi-tensor path runs.
- sparse gradients: algorithms with ``sparse_gradients`` (SGD, Adagrad) run torch's own sparse update;
  the others raise a ``RuntimeError`` that says so.
- ``differentiable=True``: the step runs with autograd enabled, one parameter at a time, on fresh copies
  of the state, so the graph reaches back through every step to the gradients, the state and the tensor
  hyperparameters that require grad (``lr``, ``betas``; see :func:`hyperparameter`). As in torch, the
  parameters are updated in place: optimise non-leaf tensors (clones of the leaves).
- ``capturable=True`` is accepted (state dicts of captured runs load), but the eager step computes with
  the step count on the host, so it is not CUDA-graph capturable. (It keeps each count in Python while
  the ``step`` tensor's version counter shows that only its own increment touched it, and reads the
  tensor otherwise: after ``load_state_dict`` or any in-place change.)

Under ``torch.compile`` (``torch.compiler.is_compiling()``) the step reads nothing on the host: the step
counts of a bucket reach the transforms as one float64 tensor (one entry per parameter), tensor
hyperparameters (a scheduled ``lr=torch.tensor(...)``) as 0-d float64 tensors, and the factors derived
from them stay tensors down to the final multi-tensor kernel, as in torch.optim's compiled path; so
``step()`` traces into one graph, and a scheduler rewriting a tensor ``lr`` causes no recompile. Missing
state is created before tracing, through the ``_init_group`` hook that dynamo runs eagerly for torch's
optimizers, so the second step does not recompile either. The eager step is unchanged.

A chain is the single source of each algorithm's math. ``compiled=True`` in a param group (an opt-in,
not an argument of the constructors) runs an elementwise chain's blocked path through the one-pass kernel
that :mod:`descentlab.optim._generated` compiles from this engine's own update, instead of the eager chain.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import Tensor

from descentlab.optim._bucket import Bucket, BucketPlan, full_float64
from descentlab.optim._generated import Averaging, KernelCall, kernel_takes
from descentlab.optim._parts import AVERAGING_PART, ELEMENTWISE_PART, REDUCING_PART, repeated_parts
from descentlab.optim._rules import add_decayed_weights, decay_weights_, increment_counts_, per_tensor
from descentlab.optim._transform import (
    Direction,
    Directions,
    EvaluationPoint,
    GroupReduction,
    GroupState,
    Hyperparameter,
    Signature,
    State,
    Transform,
    Update,
    UpdateSums,
    as_float,
    build_init,
    declared_hyperparameters,
    hyperparameter,
    is_graph_tensor,
    scalar_dtype,
    step_scalar,
)
from descentlab.optim._validation import Flag, LearningRate, ValidatedOptimizer

__all__ = [
    "Direction",
    "FlagError",
    "RuleOptimizer",
    "as_float",
    "hyperparameter",
    "scalar_dtype",
    "step_scalar",
]


# The eager step counts steps in Python (see RuleOptimizer._buckets) for step tensors of these dtypes,
# below the count where a float32 tensor stops holding every integer (there the tensor's own value rules).
_COUNTED_DTYPES = frozenset({torch.float32, torch.float64})
_MAX_COUNTED_STEP = 1 << 24
# Groups with fewer parameters are bucketed anew every step: checking a plan costs about 10 µs whatever
# the group's size, and bucketing about 1.5 µs a parameter (benchmarks/step_overhead.py, the crossover
# measured with benchmarks/bucket_plan.py).
_PLANNED_GROUP_SIZE = 16


class FlagError(RuntimeError, ValueError):
    """A torch.optim flag refused as torch refuses it: a ``RuntimeError`` as torch raises, and a
    ``ValueError`` since the input is what is wrong (``fused`` with ``foreach`` or ``differentiable``;
    ``differentiable=True`` with leaf parameters)."""


class _EngineKeys:
    """The group keys the engine itself reads, declared like a transform's (checks from _validation)."""

    hyperparameters = (
        Hyperparameter("lr", check=LearningRate(), annotation="float | Tensor"),
        Hyperparameter("weight_decay", 0),
        Hyperparameter("decoupled_weight_decay", False),
        Hyperparameter("foreach", None),
        Hyperparameter("maximize", False),
        Hyperparameter("capturable", False),
        Hyperparameter("differentiable", False),
        Hyperparameter("fused", None),
        # Opt-in per group: the generated one-pass kernel of an elementwise chain (_generated.py).
        Hyperparameter("compiled", False, Flag()),
    )


class RuleOptimizer(ValidatedOptimizer):
    """Base class of descentlab's optimizers: a ``torch.optim.Optimizer`` that runs a declared chain.

    See the module docstring for what a subclass declares. Class attributes read by the registry and
    the ``descentlab optimizers`` table:

    - ``reference``: short citation of the algorithm's paper or book;
    - ``variants``: the accepted values of the ``variant`` argument, the default first.
    """

    reference: ClassVar[str] = ""
    variants: ClassVar[tuple[str, ...]] = ()
    # How a training loop must call step(): "gradient" (after backward(), closure optional),
    # "closure" (closure computes the loss and calls backward(), called several times per step),
    # "closure-no-backward" (closure returns the loss with its graph; Newton), or "svrg" (see SVRG).
    step_protocol: ClassVar[str] = "gradient"
    chain: ClassVar[tuple[Transform, ...]] = ()
    signature: ClassVar[Signature | None] = None
    weight_decay_placement: ClassVar[str] = "none"
    schedule_multiplier_variants: ClassVar[tuple[str, ...]] = ()
    evaluation_point: ClassVar[EvaluationPoint | None] = None
    # Whether every parameter's state is created in __init__ (torch's Adagrad does), not at its first step.
    eager_state: ClassVar[bool] = False
    # Derived from the declarations by __init_subclass__: whether the whole chain is elementwise, the
    # per-parameter and group-level state declarations, and the float64 scalar state keys.
    elementwise: ClassVar[bool] = True
    state_declarations: ClassVar[tuple[State, ...]] = ()
    group_state_declarations: ClassVar[tuple[GroupState, ...]] = ()
    group_reductions: ClassVar[tuple[GroupReduction, ...]] = ()
    elementwise_declarations: ClassVar[tuple[bool | Callable[[dict[str, Any]], bool], ...]] = ()
    block_shared_state: ClassVar[frozenset[str]] = frozenset()
    update_sums: ClassVar[UpdateSums | None] = None
    float64_state: ClassVar[tuple[str, ...]] = ()
    # The group conditions of the state entries when every entry exists only under one (plain SGD has no
    # state unless momentum != 0): the eager step then asks them once, not each parameter its state.
    state_conditions: ClassVar[tuple[Callable[[dict[str, Any]], bool], ...]] = ()
    # Cache blocking: elementwise chains run over slices of about this many elements at a time, so
    # params, grads, state and temporaries of one slice stay in cache across the chain's kernels instead
    # of streaming every full-size tensor through memory once per kernel (benchmarks/step_speed.py).
    # 0 turns it off; chains that are not elementwise are never blocked.
    block_numel: ClassVar[int] = 1 << 20
    # Devices on which torch.optim has a fused kernel for this algorithm; ``fused=True`` there (variant
    # "torch") runs that kernel through :meth:`torch_step`. Empty: ``fused`` runs the engine's path.
    fused_devices: ClassVar[tuple[str, ...]] = ()
    # Whether :meth:`torch_step` handles sparse gradients (torch.optim's SGD and Adagrad do).
    sparse_gradients: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Read the class's declarations: checks, state, elementwise, and the generated ``__init__``."""
        super().__init_subclass__(**kwargs)
        parts = [*cls.chain, *([cls.evaluation_point] if cls.evaluation_point else [])]
        declared = declared_hyperparameters([*parts, _EngineKeys])
        unchecked = sorted(name for name, hyper in declared.items() if hyper.checker() is None)
        if unchecked:  # one way to validate: every declared key has its check
            raise TypeError(f"{cls.__name__} declares hyperparameters without a check: {unchecked}")
        checks = {name: hyper.check for name, hyper in declared.items() if hyper.check}
        cls.hyperparameters = MappingProxyType({**checks, **cls.__dict__.get("hyperparameters", {})})
        states: dict[str, State] = {}
        for part in parts:
            for state in part.state:
                states.setdefault(state.name, state)  # STEP is declared by several transforms
        cls.state_declarations = tuple(states.values())
        cls.group_state_declarations = tuple(s for part in cls.chain for s in part.group_state)
        cls.group_reductions = tuple(part.reduction for part in cls.chain if part.reduction is not None)
        if cls.group_reductions and cls.evaluation_point is not None:
            # Phase one would see the parameters at the evaluation point, not at the iterate.
            raise TypeError(f"{cls.__name__}: a group reduction cannot be combined with an evaluation point")
        update_sums = [part.update_sums for part in cls.chain if part.update_sums is not None]
        if len(update_sums) > 1:
            raise TypeError(f"{cls.__name__}: at most one transform of a chain may declare update_sums")
        cls.update_sums = update_sums[0] if update_sums else None
        cls.float64_state = tuple(s.name for s in cls.state_declarations if s.float64) or cls.float64_state
        conditional = all(s.when_group is not None and s.when is None for s in cls.state_declarations)
        cls.state_conditions = tuple(s.when_group for s in cls.state_declarations) if conditional else ()
        # A chain elementwise only in some groups (a predicate) counts as not elementwise here; the step
        # asks each group (_elementwise_in).
        cls.elementwise = all(part.elementwise is True for part in parts)
        cls.elementwise_declarations = tuple(part.elementwise for part in parts)
        cls.block_shared_state = frozenset(s.name for s in cls.state_declarations if s.shared_by_blocks)
        if "signature" in cls.__dict__ and cls.signature is not None:
            cls.__init__ = build_init(cls, declared, cls.signature)  # type: ignore[method-assign]

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        super().__init__(params, defaults)
        self._step_counts: dict[int, tuple[Tensor, int, int]] = {}  # see _bucket_anew
        self._bucket_plans: dict[int, BucketPlan] = {}  # by id of the group; see _buckets
        self._averaging: dict[int, Averaging] = {}  # by id of the group; see averaging_in_kernel
        if self.eager_state:
            for group in self.param_groups:
                for param in group["params"]:
                    self.state[param] = self.init_state(group, param)

    construct = __init__  # what a generated __init__ calls once it has bound its arguments

    def check_group(self, group: dict[str, Any]) -> None:
        """Refuse flag combinations torch.optim refuses, and unknown variants.

        Subclasses that add rules call ``super().check_group(group)`` first.
        """
        name = type(self).__name__
        if group.get("fused") and group.get("foreach"):
            raise FlagError(
                f"{name}: `fused` and `foreach` cannot be `True` together (two implementations of one "
                "step); pass one of them"
            )
        if group.get("fused") and group.get("differentiable"):
            raise FlagError(
                f"{name}: `fused` does not support `differentiable` (fused=True has no autograd formula for "
                "differentiable=True); pass fused=False to differentiate through the step"
            )
        if group.get("variant") is not None or self.variants:
            variant = group.get("variant")
            if variant not in self.variants:
                raise ValueError(
                    f"unknown variant {variant!r} for {name}; "
                    f"choose one of {', '.join(map(repr, self.variants))}"
                )

    # --- what the declarations provide ----------------------------------------------------------
    def init_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Any]:
        """The fresh state of ``param``: every declared entry whose ``when`` holds for ``group``."""
        fresh = {}
        for state in self.state_declarations:
            if (state.when_group is None or state.when_group(group)) and (
                state.when is None or state.when(group, param)
            ):
                fresh[state.name] = state.init(group, param)
        return fresh

    def directions(self, update: Update) -> Directions:
        """Run the chain on ``update``: the gradient in, the directions to apply out."""
        result: Directions = Direction(update.grads)
        if len(self.chain) == 1:  # most algorithms: nothing can follow a chain's end
            return self.chain[0].update(update, result)
        for index, part in enumerate(self.chain):
            if not isinstance(result, Direction):
                raise TypeError(f"{part.name} follows {self.chain[index - 1].name}, which ends a chain")
            result = part.update(update, result)
        return result

    def torch_step(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        state: dict[str, list[Any]],
        steps: list[Tensor],
        **implementation: Any,
    ) -> None:
        """Run torch.optim's own functional step on these lists (algorithms with ``fused_devices`` or
        ``sparse_gradients``). ``implementation`` holds the flags to pass on (``fused``, ``foreach``,
        ``has_sparse_grad``, ``grad_scale``, ``found_inf``); torch increments ``steps`` itself."""
        raise NotImplementedError

    # --- torch.optim.Optimizer protocol ---------------------------------------------------------
    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._step_counts, self._bucket_plans, self._averaging = {}, {}, {}
        # A state_dict saved by torch.optim (or an older descentlab) lacks our extra group keys; a
        # class's fixed keys hold whatever was saved (an Adam state_dict loaded into AdamW is decoupled,
        # as torch.optim.AdamW forces it).
        fixed = self.signature.fixed if self.signature is not None else {}
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            group.update(fixed)
            for param in group["params"]:
                param_state = self.state.get(param)
                if param_state and "step" in param_state and not torch.is_tensor(param_state["step"]):
                    param_state["step"] = torch.tensor(float(param_state["step"]), dtype=scalar_dtype())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict``, except that the keys in ``float64_state`` stay float64 on the CPU.

        They are copied from ``state_dict`` as saved (not from torch's cast), so a save/load round trip
        continues bit for bit like the uninterrupted run.
        """
        super().load_state_dict(state_dict)
        if self.float64_state:
            self._restore_float64_state(state_dict)

    def _restore_float64_state(self, state_dict: dict[str, Any]) -> None:
        # Saved ids pair with the parameters in group order, as in torch's load_state_dict.
        saved_ids = chain.from_iterable(group["params"] for group in state_dict["param_groups"])
        params = chain.from_iterable(group["params"] for group in self.param_groups)
        for saved_id, param in zip(saved_ids, params):
            saved = state_dict["state"].get(saved_id, {})
            for key in self.float64_state:
                if isinstance(saved.get(key), Tensor):
                    # A copy: the optimizer updates these in place and must not write into state_dict.
                    self.state[param][key] = saved[key].to(device="cpu", dtype=torch.float64, copy=True)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step; returns the value of ``closure`` (re-evaluates the loss).

        With ``differentiable=True`` the update runs with autograd enabled (as torch.optim does), so the
        new parameters and state are functions of the old ones, of the gradients and of tensor
        hyperparameters; parameters are still updated in place, so pass non-leaf tensors (clones).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        differentiable = bool(self.defaults.get("differentiable", False))
        if differentiable:
            self._check_differentiable_params()
        compiling = torch.compiler.is_compiling()
        with torch.set_grad_enabled(differentiable):
            for group in self.param_groups:
                implementation = self._torch_implementation(group)
                if implementation is not None:
                    self._run_torch_step(group, implementation)
                    continue
                if compiling and (self.state_declarations or self.group_state_declarations):
                    # Nothing to create otherwise; and under torch.compile, dynamo breaks the graph at an
                    # _init_group call that follows writes to the parameters (SVRG's closure evaluations).
                    self._init_group(group)
                elif self.group_state_declarations:
                    self._init_group_state(group)  # the eager step creates parameter state in _buckets
                generated = self._generated(group, compiling, differentiable)
                buckets = self._buckets(group, compiling, generated, differentiable)
                if self.group_reductions and buckets:
                    self._reduce_group(group, buckets, generated)
                sums: list[list[Tensor]] = []
                for (_, _, step, _), bucket in buckets.items():
                    if generated:
                        sums += self._update_generated(group, bucket, step)
                    else:
                        sums += self._update_bucket(
                            group, bucket, bucket.step_count(step) if compiling else step, differentiable
                        )
                if sums and not compiling:
                    self._finish_update_sums(group, sums)
        return loss

    def _elementwise_in(self, group: dict[str, Any]) -> bool:
        """Whether the chain is elementwise in ``group`` (a transform may declare it per group)."""
        return self.elementwise or all(
            declared(group) if callable(declared) else declared for declared in self.elementwise_declarations
        )

    def _finish_update_sums(self, group: dict[str, Any], sums: list[list[Tensor]]) -> None:
        """The chain's :class:`UpdateSums` finished: each bucket's (block's, part's) partial sums added in
        float64, and ``finish`` called with the states of the group's parameters that stepped."""
        assert self.update_sums is not None
        states = [self.state[param] for param in group["params"] if param.grad is not None]
        self.update_sums.finish(group, states, _float64_totals(sums))

    @classmethod
    def has_generated_kernel(cls) -> bool:
        """Whether ``compiled=True`` runs this class's update through the generated kernel.

        Any chain: elementwise ones and those with per-tensor reductions (LAMB's and LARS's trust ratios,
        SWATS's switch test, Muon's orthogonalisation, Adafactor's factored moments), which the kernel
        traces over whole tensors, never slices. A group reduction's first phase (Prodigy's sums over
        every bucket) has a kernel of its own, and the group state reaches the update's kernel as tensors.
        ``block_numel = 0`` (the exact unblocked path) turns it off.
        """
        return bool(cls.chain) and bool(cls.block_numel)

    def _generated(self, group: dict[str, Any], compiling: bool, differentiable: bool) -> bool:
        """Whether ``group``'s buckets go to the generated kernel (:mod:`descentlab.optim._generated`).

        Where the class has one (:meth:`has_generated_kernel`; ``block_numel = 0`` on an instance turns
        it off too), outside torch.compile, with the multi-tensor path (not ``foreach=False``, not
        differentiable). Group-level state advances on the host before the kernel, which takes its
        numbers as tensors (see ``_generated._traced_group``): as constants, each step compiled a new
        entry (20 s each on 196 tensors).
        """
        return bool(
            group.get("compiled")
            and self.block_numel
            and self.has_generated_kernel()
            and not compiling
            and not differentiable
            and group.get("foreach") is not False
        )

    def _update_generated(self, group: dict[str, Any], bucket: Bucket, step: int) -> list[list[Tensor]]:
        """Update ``bucket`` with the generated kernel, which also increments its step counts, one call
        per part of its repeated layers (:meth:`_kernel_parts`); where the kernel cannot take the bucket
        or a part (see :meth:`Bucket.traceable`, :func:`kernel_takes` and :class:`KernelCall`), increment
        those counts here and run the eager multi-tensor path. Returns the calls' update sums."""
        averaging = self._averaging.get(id(group)) if self._averaging else None
        whole = self._traceable(group, bucket, stateless=averaging is not None)
        if whole is None or not kernel_takes(self, whole):
            return self._update_eagerly(group, bucket, bucket.counts, step)
        kernel, counts, sums = KernelCall(self, group), bucket.counts, []
        for indices in self._kernel_parts(group, whole, averaged=averaging is not None):
            part = whole.part(indices)
            part_counts = [counts[index] for index in indices] if counts else []
            part_sums = kernel.run(part, step, part_counts, averaging)
            if part_sums is None:
                sums += self._update_eagerly(group, part, part_counts, step)
            elif part_sums:
                sums.append(part_sums)
        return sums

    @contextlib.contextmanager
    def averaging_in_kernel(self, requests: dict[int, Averaging]) -> Iterator[None]:
        """Inside the block, the generated kernel of each group whose ``id`` is in ``requests`` also
        updates the averages its :class:`~descentlab.optim._generated.Averaging` asks for, in the loop
        that moves the parameters (one pass over memory for WeightAveraging around this optimizer)."""
        self._averaging = requests
        try:
            yield
        finally:
            self._averaging = {}

    def _traceable(self, group: dict[str, Any], bucket: Bucket, stateless: bool = False) -> Bucket | None:
        """``bucket`` as the generated kernel takes it (:meth:`Bucket.traceable`): a DTensor as its local
        shards only for a chain elementwise in ``group`` that takes no sums over the group."""
        shards = self._elementwise_in(group) and self.update_sums is None
        return bucket.traceable(shards, stateless=stateless, shared=self.block_shared_state)

    def _kernel_parts(
        self, group: dict[str, Any], bucket: Bucket, averaged: bool = False
    ) -> tuple[tuple[int, ...], ...]:
        """The parts of ``bucket`` the kernel is called on: its repeated layers (:mod:`._parts`). No
        chain's update of one tensor reads another (sums over the group go through :class:`UpdateSums`
        and :class:`GroupReduction`), so any chain may be called in parts: one layer a call where the
        kernel reduces (norms, update sums), whose compile grows fastest with its tensor count (SWATS's
        Adam phase on 196 tensors in one call: 73 s), smaller parts where it also updates a wrapper's
        averages (``averaged``: a fifth list of tensors), larger parts for the others."""
        reduces = self.update_sums is not None or not self._elementwise_in(group)
        minimum = REDUCING_PART if reduces else AVERAGING_PART if averaged else ELEMENTWISE_PART
        cache, key = bucket.cache, ("kernel parts", minimum)
        if cache is not None and key in cache:  # a planned bucket: the same tensors as at the last step
            return cache[key]
        parts = repeated_parts([param.shape for param in bucket.params], minimum)
        if cache is not None:
            cache[key] = parts
        return parts

    def _update_eagerly(
        self, group: dict[str, Any], bucket: Bucket, counts: list[Tensor], step: int
    ) -> list[list[Tensor]]:
        """A generated group's eager update of ``bucket``: its step ``counts`` incremented, then the
        multi-tensor path (its update sums returned)."""
        if counts:
            increment_counts_(counts)
        return self._update_bucket(group, bucket, step, differentiable=False)

    def _check_differentiable_params(self) -> None:
        """A differentiable step updates parameters in place inside the graph: leaves cannot take that."""
        for group in self.param_groups:
            for index, param in enumerate(group["params"]):
                if param.is_leaf and param.requires_grad:
                    raise FlagError(
                        f"{type(self).__name__}(differentiable=True) updates its parameters in place inside "
                        "the autograd graph, so its parameters must be non-leaf tensors; parameter "
                        f"{index} is a leaf that requires grad: pass clones (p.clone()) of the leaves, as "
                        "torch.optim requires"
                    )

    @property
    def _step_supports_amp_scaling(self) -> bool:
        """Whether ``GradScaler`` may hand the gradient scale to :meth:`step` (read by torch.amp).

        Only torch's fused kernels unscale gradients themselves, so this holds only when every group
        runs one; otherwise GradScaler unscales the gradients before the step, as for any optimizer.
        """
        return bool(self.param_groups) and all(self._runs_fused_kernel(group) for group in self.param_groups)

    # --- internals --------------------------------------------------------------------------------
    def _init_group(self, group: dict[str, Any]) -> None:
        """Create the missing state of ``group``'s parameters that have gradients.

        dynamo runs a method of this name eagerly when it traces an optimizer's step, and then traces
        the rest against the state it created; so a compiled first step does not record the state's
        creation, and the second does not recompile for the state it finds. It also advances the
        group-level entries that declare ``advance`` (once per group and step).
        """
        self._init_group_state(group)
        for param in group["params"]:
            if param.grad is not None and not self.state.get(param):
                param_state = self.init_state(group, param)
                # Parameters without state (plain SGD) get no entry at all, as in torch.optim.
                if param_state:
                    self.state[param] = param_state

    def _init_group_state(self, group: dict[str, Any]) -> None:
        """Create the missing group-level entries of ``group``, then advance those that declare it."""
        for declaration in self.group_state_declarations:
            if declaration.name not in group:
                group[declaration.name] = declaration.init(group)
        for declaration in self.group_state_declarations:
            if declaration.advance is not None:  # once per group and step, before its buckets
                group[declaration.name] = declaration.advance(group)

    def _reduce_group(
        self, group: dict[str, Any], buckets: dict[tuple[Any, ...], Bucket], generated: bool
    ) -> None:
        """Phase one of a two-phase step: each reduction's sums over every bucket (from the generated kernel
        of the sums for a ``generated`` group), then its ``finish``."""
        for index, reduction in enumerate(self.group_reductions):
            kernel = KernelCall(self, group) if generated else None  # the group as the last finish left it
            partials = [
                sums
                for (_, _, step, _), bucket in buckets.items()
                for sums in self._partial_sums(group, bucket, step, index, kernel)
            ]
            reduction.finish(group, _float64_totals(partials))

    def _partial_sums(
        self, group: dict[str, Any], bucket: Bucket, step: int, index: int, kernel: KernelCall | None
    ) -> list[Sequence[Tensor]]:
        """Reduction ``index``'s sums over ``bucket``: one set, or one per part the kernel is called on."""
        whole = self._traceable(group, bucket) if kernel is not None else None
        if kernel is None or whole is None or not kernel_takes(self, whole):
            return [self._bucket_sums(group, bucket, bucket.step_count(step), index)]
        partials = []
        for indices in self._kernel_parts(group, whole):
            part = whole.part(indices)
            sums = kernel.sums(part, step, index)
            eager = sums is None
            partials.append(self._bucket_sums(group, part, bucket.step_count(step), index) if eager else sums)
        return partials

    def _bucket_sums(self, group: dict[str, Any], bucket: Bucket, step: int | Tensor, index: int) -> Any:
        """Reduction ``index``'s ``accumulate`` on ``bucket``, which sees the gradient the chain will see
        (after ``maximize`` and coupled weight decay) and the parameters not yet moved."""
        update = self._gradient_update(group, bucket, step, self._decoupled(group))
        return self.group_reductions[index].accumulate(update)

    def _update_bucket(
        self, group: dict[str, Any], bucket: Bucket, step: int | Tensor, differentiable: bool
    ) -> list[list[Tensor]]:
        """One update of ``bucket``: per parameter, in cache-sized blocks or whole; returns the update
        sums of each call of the chain that took some (:class:`UpdateSums`)."""
        # The differentiable step goes one parameter at a time, unblocked, as torch's: a flat slice of a
        # tensor that autograd tracks is a view whose in-place update would rewrite the graph.
        if differentiable:
            bucket.clone_state()
        if group.get("foreach") is False or differentiable:
            sums = [
                self._apply(group, bucket.select(index), _select_step(step, index))
                for index in range(len(bucket.params))
            ]
            if differentiable:
                bucket.store_state()
        # Only an elementwise chain may be cut into cache-sized blocks; a compiled step's kernels are fused
        # by the compiler instead.
        elif (
            self.block_numel
            and self._elementwise_in(group)
            and bucket.needs_blocks(self.block_numel)
            and not torch.compiler.is_compiling()
            and (plain := bucket.blockable(self.block_shared_state, local_shards=self.update_sums is None))
        ):
            blocks = plain.blocks(self.block_numel, self.block_shared_state)
            sums = [self._apply(group, block, step) for block in blocks]
        else:
            sums = [self._apply(group, bucket, step)]
        return [taken for taken in sums if taken]

    def _runs_fused_kernel(self, group: dict[str, Any]) -> bool:
        """Whether ``fused=True`` in ``group`` runs torch's fused kernel (else the engine's own path)."""
        if not group.get("fused") or group.get("variant", "torch") != "torch":
            return False
        stepped = [param for param in group["params"] if param.grad is not None]
        return all(param.device.type in self.fused_devices for param in stepped)

    def _torch_implementation(self, group: dict[str, Any]) -> dict[str, Any] | None:
        """The flags for :meth:`torch_step` when ``group`` is stepped by torch's code, else ``None``."""
        if not group.get("fused"):
            if not self.sparse_gradients:
                return None  # a sparse gradient meets _buckets's refusal
            for param in group["params"]:
                grad = param.grad
                if grad is not None and grad.is_sparse:
                    return self._sparse_implementation(group)
            return None
        stepped = [param for param in group["params"] if param.grad is not None]
        if any(param.grad.is_sparse for param in stepped):
            return self._sparse_implementation(group)
        for param in stepped:
            _check_fused_param(param, self.fused_devices)
        if stepped and self._runs_fused_kernel(group):
            return {
                "fused": True,
                "grad_scale": getattr(self, "grad_scale", None),
                "found_inf": getattr(self, "found_inf", None),
            }
        return None

    def _sparse_implementation(self, group: dict[str, Any]) -> dict[str, Any]:
        """torch's sparse update for ``group`` (which has a sparse gradient), or the error that refuses it."""
        self._check_sparse_supported(group)
        return {"has_sparse_grad": True, "foreach": False}

    def _check_sparse_supported(self, group: dict[str, Any]) -> None:
        name = type(self).__name__
        if not self.sparse_gradients:
            raise RuntimeError(
                f"{name} does not support sparse gradients; use SGD or Adagrad (as in torch.optim, "
                "descentlab supports them there), torch.optim.SparseAdam, or sparse=False in nn.Embedding"
            )
        if group.get("variant", "torch") != "torch":
            raise RuntimeError(
                f"{name}(variant={group['variant']!r}) does not support sparse gradients; only "
                "variant='torch' does (torch.optim's sparse update), or pass sparse=False to nn.Embedding"
            )

    def _run_torch_step(self, group: dict[str, Any], implementation: dict[str, Any]) -> None:
        """Create missing state, then let :meth:`torch_step` update the parameters that have gradients."""
        self._init_group(group)
        bucket = Bucket()
        for param in group["params"]:
            if param.grad is None:
                continue
            param_state = self.state.get(param, {})
            if implementation.get("fused") and "step" in param_state:
                # torch's fused kernels read a float32 step on the parameter's device (torch stores it so).
                param_state["step"] = param_state["step"].to(device=param.device, dtype=torch.float32)
            grad, is_complex = param.grad, torch.is_complex(param)
            if is_complex:
                param, grad = torch.view_as_real(param), torch.view_as_real(grad)
            bucket.add(param, grad, param_state, is_complex)
        steps = [owner["step"] for owner in bucket.owners if "step" in owner]
        self.torch_step(group, bucket.params, bucket.grads, bucket.state, steps, **implementation)
        bucket.store_created_state()

    def _decoupled(self, group: dict[str, Any]) -> bool:
        placement = self.weight_decay_placement
        return placement == "decoupled" or (placement == "flag" and group["decoupled_weight_decay"])

    def _gradient_update(
        self, group: dict[str, Any], bucket: Bucket, step: int | Tensor, decoupled: bool
    ) -> Update:
        """The :class:`Update` of ``bucket`` whose gradient is the chain's input (coupled decay added)."""
        update = Update(group, bucket.params, bucket.grads, bucket.state, step)
        if not decoupled and self.weight_decay_placement != "none":
            # Coupled (L2) decay belongs to the gradient, so to the point where it was evaluated.
            weight_decay = float(group["weight_decay"])
            if weight_decay != 0:
                update.grads = add_decayed_weights(update.grads, update.params, weight_decay)
        return update

    def _apply(self, group: dict[str, Any], bucket: Bucket, step: int | Tensor) -> list[Tensor] | None:
        """One update of ``bucket``: decay placement, evaluation point, the chain, the directions; returns
        the partial sums the chain took for its :class:`UpdateSums` (``None`` where it took none)."""
        decoupled = self._decoupled(group)
        update = self._gradient_update(group, bucket, step, decoupled)
        point = self.evaluation_point
        if point is not None:
            point.to_iterate(update)
        directions = self.directions(update)
        if bucket.created_on_use:
            bucket.store_created_state()
        if decoupled:
            # The chain's directions never read the parameters, so shrinking them after the chain ran is
            # torch's "decay first" exactly.
            factor = self._decay_multiplier(group) * float(group["weight_decay"]) * update.decay_multiplier
            decay_weights_(update.params, factor)
        if point is not None:
            directions = point.to_evaluation(update, directions)
        if isinstance(directions, Direction):
            apply_update(update.params, directions, group["lr"] if directions.lr_scaled else 1.0)
            return update.sums
        for direction in directions or ():
            apply_update(update.params, direction, group["lr"] if direction.lr_scaled else 1.0)
        return update.sums

    def _decay_multiplier(self, group: dict[str, Any]) -> float | Tensor:
        """What multiplies ``weight_decay`` in decoupled decay: ``lr``, or the paper's schedule multiplier.

        Loshchilov & Hutter's :math:`\\eta_t` is read as ``lr / initial_lr`` (``initial_lr`` is written by
        every torch ``LRScheduler``); 1 without a scheduler or when ``initial_lr`` is 0.
        """
        if group.get("variant") not in self.schedule_multiplier_variants:
            return hyperparameter(group, "lr")
        # A compiled step keeps tensor rates tensors (see step_scalar) and chooses without a host read.
        lr, initial_lr = step_scalar(group["lr"]), step_scalar(group.get("initial_lr", 0.0))
        if isinstance(initial_lr, Tensor):
            return torch.where(initial_lr > 0, lr / initial_lr, 1.0)
        return lr / initial_lr if initial_lr > 0 else 1.0

    def _buckets(
        self,
        group: dict[str, Any],
        compiling: bool = False,
        generated: bool = False,
        differentiable: bool = False,
    ) -> dict[tuple[Any, ...], Bucket]:
        """Group the parameters that have gradients by device, dtype, step and state keys, creating state
        lazily, with the gradients negated under ``maximize``. (Whether the state is shaped like the
        parameters is checked where blocking needs it.) The step counts are incremented here, except for
        a ``generated`` group, whose buckets keep them in :attr:`Bucket.counts` for the kernel to
        increment (196 separate 0-d increments cost about 0.8 ms on a CPU).

        An eager step reuses the group's :class:`BucketPlan` from the step before where nothing it was
        built from changed, and otherwise buckets anew (:meth:`_bucket_anew`) and plans the next step.
        """
        create = (
            not compiling
            and bool(self.state_declarations)
            and (not self.state_conditions or any(condition(group) for condition in self.state_conditions))
        )
        flags = (create, generated)
        reusable = not compiling and not differentiable and len(group["params"]) >= _PLANNED_GROUP_SIZE
        plan = self._bucket_plans.get(id(group)) if reusable else None
        reused = plan.reuse(group, self.state, flags) if plan is not None and plan.group is group else None
        if reused is not None:
            buckets, steps = reused
        else:
            buckets, steps, plannable = self._bucket_anew(group, compiling, generated, create)
            if reusable and plannable:
                self._bucket_plans[id(group)] = BucketPlan(group, self.state, buckets, steps, flags)
            elif self._bucket_plans:  # a plan of this group from steps that could plan it is stale now
                self._bucket_plans.pop(id(group), None)
        if steps and not generated:
            increment_counts_(steps)
        if group.get("maximize", False):
            for bucket in buckets.values():
                bucket.grads = torch._foreach_neg(bucket.grads)
        return buckets

    def _bucket_anew(
        self, group: dict[str, Any], compiling: bool, generated: bool, create: bool
    ) -> tuple[dict[tuple[Any, ...], Bucket], list[Tensor], bool]:
        """:meth:`_buckets` without a plan: the buckets, the step counts still to increment, and whether
        a :class:`BucketPlan` may reuse them (no complex parameter, every count kept on the host).

        An eager step creates missing state here, in its one pass over the parameters (a compiled step
        had :meth:`_init_group` create it), and reads each step count from :attr:`_step_counts` where
        the count it last wrote still stands, instead of reading the tensor on the host (``.item()``).
        It is one function on purpose: on the lab's tiny models a helper call per parameter costs about
        what it would save (``benchmarks/step_overhead.py``).
        """
        buckets: dict[tuple[Any, ...], Bucket] = {}
        steps_to_increment: list[Tensor] = []
        state, counts = self.state, self._step_counts
        plannable = True
        for param in group["params"]:
            grad = param.grad
            if grad is None:
                continue
            if grad.is_sparse:
                self._check_sparse_supported(group)  # raises: a supported one took _torch_implementation
                raise RuntimeError(f"{type(self).__name__}: sparse gradients reached the dense step")
            param_state = state.get(param) if state else None  # no hashing while none has state
            if not param_state:
                fresh = self.init_state(group, param) if create else None
                if fresh:  # parameters without state (plain SGD) get no entry at all, as in torch.optim
                    state[param] = fresh
                param_state = fresh or param_state or {}
            step = 0
            step_tensor = None
            if "step" in param_state:
                step_tensor = param_state["step"]
                steps_to_increment.append(step_tensor)
                # A compiled step keeps one bucket per device and dtype (see Bucket.step_count).
                if not compiling:
                    try:
                        version = step_tensor._version
                    except RuntimeError:  # an inference-mode tensor has no version counter
                        version = -1
                    # Keyed by id: a tensor's own hash is a Python call. An id reused by a new parameter
                    # cannot match, since the entry holds the old step tensor alive.
                    cached = counts.get(id(param))
                    if cached is not None and cached[0] is step_tensor and cached[1] == version:
                        step = cached[2] + 1
                    else:
                        step = int(step_tensor.item()) + 1
                        if step_tensor.dtype not in _COUNTED_DTYPES:
                            version = -1
                    if version >= 0 and step < _MAX_COUNTED_STEP:
                        # Valid while the tensor is the one the increment below bumps by one version.
                        counts[id(param)] = (step_tensor, version + 1, step)
                    else:
                        plannable = False
            dtype = param.dtype
            is_complex = dtype.is_complex
            if is_complex:
                plannable = False
                param, grad = torch.view_as_real(param), torch.view_as_real(grad)
                dtype = param.dtype
            # The state's keys: parameters whose state differs (a factored moment for a matrix, a full
            # one for a vector) never share a bucket, so every list a transform receives is aligned.
            key = (param.device, dtype, step, tuple(param_state))
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = Bucket()
            bucket.add(param, grad, param_state, is_complex)
            if generated and step_tensor is not None:
                bucket.counts.append(step_tensor)
        return buckets, steps_to_increment, plannable


def apply_update(params: list[Tensor], direction: Direction, lr: float | Tensor) -> None:
    """``param <- param - lr * direction`` with one multi-tensor kernel (floats) or as tensors.

    ``lr`` is the group's value (a float or a tensor). Factors that autograd tracks go through
    :func:`_apply_differentiable`, tensor factors of a compiled step through :func:`_apply_tensor_factors`.
    """
    scale = direction.scale
    if type(lr) is float and type(scale) is float:  # the common case, decided without further calls
        if direction.denominator is None:
            torch._foreach_add_(params, direction.numerator, alpha=-lr * scale)
        else:
            torch._foreach_addcdiv_(params, direction.numerator, direction.denominator, -lr * scale)
        return
    if is_graph_tensor(lr) or is_graph_tensor(scale):
        _apply_differentiable(params, direction, lr)
        return
    lr = step_scalar(lr)
    if isinstance(lr, Tensor) or isinstance(scale, Tensor):
        _apply_tensor_factors(params, direction, lr)
        return
    alpha: float | list[float] = [-lr * s for s in scale] if isinstance(scale, list) else -lr * scale
    if direction.denominator is None:
        if isinstance(alpha, list):
            _add_scaled_(params, direction.numerator, alpha)
        else:
            torch._foreach_add_(params, direction.numerator, alpha=alpha)
    else:
        torch._foreach_addcdiv_(params, direction.numerator, direction.denominator, alpha)


def _add_scaled_(params: list[Tensor], numerators: list[Tensor], alphas: list[float]) -> None:
    """``param += alpha * numerator`` with one ``alpha`` per tensor, one kernel per distinct value.

    One rounding per element, as torch's ``param.add_(x, alpha=a)`` (a fused multiply-add on the CPU),
    where a product then a sum would round twice (torch.optim.Muon's per-matrix step sizes, bit for bit).
    """
    indices_by_alpha: dict[float, list[int]] = defaultdict(list)
    for index, alpha in enumerate(alphas):
        indices_by_alpha[alpha].append(index)
    for alpha, indices in indices_by_alpha.items():
        torch._foreach_add_([params[i] for i in indices], [numerators[i] for i in indices], alpha=alpha)


def _apply_differentiable(params: list[Tensor], direction: Direction, lr: float | Tensor) -> None:
    """``param <- param - lr * scale * numerator / denominator`` with tensor ``lr`` or ``scale``.

    Tensor factors cannot be the ``alpha`` of a multi-tensor kernel, so the product is formed first;
    it keeps the graph from the update back to ``lr`` and the hyperparameters inside ``scale``.
    """
    scales = direction.scale if isinstance(direction.scale, list) else [direction.scale] * len(params)
    denominators = direction.denominator or [None] * len(params)
    for param, numerator, denominator, scale in zip(params, direction.numerator, denominators, scales):
        update = numerator if denominator is None else numerator / denominator
        param.sub_(update * (lr * scale))


def _apply_tensor_factors(params: list[Tensor], direction: Direction, lr: float | Tensor) -> None:
    """``param <- param - lr * scale * numerator / denominator`` with tensor ``lr`` or ``scale`` (compiled).

    The factors enter as tensors (one per parameter, or one for all), so the graph does not read them on
    the host; the kernels' scalar arguments take only numbers. ``(alpha * numerator) / denominator`` is
    the order of the eager step's ``addcdiv``. The compiler fuses the three passes into one.
    """
    scale = direction.scale
    if isinstance(scale, list):
        scale = torch.tensor(scale, dtype=torch.float64)
    update = torch._foreach_mul(direction.numerator, per_tensor(-lr * scale))
    if direction.denominator is not None:
        torch._foreach_div_(update, direction.denominator)
    torch._foreach_add_(params, update)


def _select_step(step: int | Tensor, index: int) -> int | Tensor:
    """The step count of parameter ``index`` of a bucket (a 1-element slice of a compiled step's counts)."""
    return step[index : index + 1] if isinstance(step, Tensor) else step


def _check_fused_param(param: Tensor, fused_devices: tuple[str, ...]) -> None:
    """Refuse what no implementation can step with ``fused=True``, with torch's words.

    Integer tensors have no gradient step and ``meta`` tensors no data; any other device or dtype that
    torch's kernel lacks runs the engine's path instead (see :attr:`RuleOptimizer.fused_devices`).
    """
    if param.device.type == "meta" or not (torch.is_floating_point(param) or torch.is_complex(param)):
        raise RuntimeError(
            "`fused=True` requires all the params to be floating point Tensors of supported devices: "
            f"{list(fused_devices) or ['any but meta']} but {param.dtype} and {param.device.type}; "
            "move the parameters to a real device (e.g. model.to_empty(device=...)) before stepping"
        )


def _float64_totals(partials: list[Sequence[Tensor]]) -> list[Tensor]:
    """Partial sums (one sequence of 0-d tensors per bucket, block or part) added term by term in float64,
    on the first partial's device; a single partial is its own total. A DTensor term (the sum over a
    bucket of sharded parameters, ``Partial`` over the ranks) is reduced over the ranks first: a shard's
    sum is not the tensor's."""
    if len(partials) == 1:
        return [full_float64(term) for term in partials[0]]
    device = full_float64(partials[0][0]).device if partials[0] else None
    return [torch.stack([full_float64(term).to(device) for term in terms]).sum() for terms in zip(*partials)]
