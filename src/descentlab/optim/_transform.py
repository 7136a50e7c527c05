"""Declarations: what an update transform needs, so the engine can provide it.

An algorithm is a short chain of :class:`Transform` objects (see :mod:`descentlab.optim._rules`); each
one *declares* what it needs instead of the algorithm class repeating it by hand:

- :attr:`Transform.hyperparameters`: the param-group keys it reads, each a :class:`Hyperparameter` with
  its default and its check (one of :mod:`descentlab.optim._validation`'s; the common keys' checks by
  default), from which the engine builds the constructor's signature and validates every param group;
- :attr:`Transform.state`: the per-parameter state entries under torch's key names, each a
  :class:`State` with an initialiser (its shape may differ by tensor: an Adafactor-style factored
  moment is a row and a column for a matrix and one vector for a bias);
- :attr:`Transform.group_state`: group-level entries (:class:`GroupState`, e.g. Prodigy's distance
  estimate ``d``), kept in the param group itself so torch's ``state_dict``/``load_state_dict`` carry
  them unchanged;
- :attr:`Transform.reduction`: a :class:`GroupReduction`, sums over every parameter of the group that
  the engine takes before it updates any of them (Prodigy's dot products), even when the group's
  parameters fall into several buckets (dtypes, devices, state layouts);
- :attr:`Transform.elementwise`: whether the update of a coordinate depends only on that coordinate's
  values; only then may the engine cut tensors into cache-sized blocks. A per-tensor reduction (a norm,
  a trust ratio, an orthogonalisation) declares ``elementwise=False``; a predicate of the group declares
  it per group (SWATS: elementwise in its "paper" variant, whose switch test goes through
  :class:`UpdateSums`, not in its per-tensor one, which tests each tensor in the chain);
- :attr:`Transform.update_sums`: an :class:`UpdateSums`, sums over the whole group that the transform
  takes from the update it computes and that the engine finishes on the host once every bucket (and
  every part the generated kernel is called on) has stepped: a decision about the next step (SWATS's
  switch test), so no update of one tensor reads another and any chain may be run in parts;
- :attr:`Transform.kernel_constants`: values read on the host from a part's state before each call of
  the generated kernel (:mod:`descentlab.optim._generated`), which is specialised on them: SWATS's
  phase, so each phase's kernel makes one pass over memory and reads only its own state, where a kernel
  for both phases computes both and selects. A new value selects (or compiles) another entry, so they
  must take few values over a run.

A transform maps the incoming :class:`Direction` (the gradient at first) to the outgoing one, given an
:class:`Update` context (the group, aligned lists of params, grads and state, the step count). It never
writes the parameters: the engine applies the directions a chain returns, places weight decay, and moves
the parameters between the point where the gradient is evaluated and the iterate
(:class:`EvaluationPoint`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from descentlab.optim._validation import COMMON_CHECKS, Check


def scalar_dtype() -> torch.dtype:
    """dtype of the per-parameter ``step`` counter, chosen as torch.optim chooses it (state_dict parity)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def as_float(value: float | Tensor) -> float:
    """A hyperparameter as a Python float (``lr`` and ``betas`` may be 1-element tensors, as in torch)."""
    return float(value.item()) if isinstance(value, Tensor) else float(value)


def hyperparameter(group: dict[str, Any], key: str) -> Any:
    """``group[key]`` as a float (a pair of floats for ``betas``), or as the tensor autograd should see.

    With ``differentiable=True`` a tensor hyperparameter that requires grad (``lr``, ``betas``, ...)
    stays a tensor, so the step is differentiable with respect to it (meta-learning). Under
    ``torch.compile`` a tensor hyperparameter becomes a 0-d float64 tensor: reading it as a float would
    break the graph and bake its value in. Everywhere else it is read as a float, as torch.optim reads it.
    """
    value = group[key]
    kind = type(value)
    if kind is float:  # what most groups hold: no further calls (a step reads several per bucket)
        return value
    if kind is tuple and len(value) == 2 and type(value[0]) is float and type(value[1]) is float:
        return value
    if isinstance(value, (tuple, list)):
        return tuple(_differentiable_or_float(group, item) for item in value)
    return _differentiable_or_float(group, value)


def _differentiable_or_float(group: dict[str, Any], value: float | Tensor) -> float | Tensor:
    return value if group.get("differentiable") and is_graph_tensor(value) else step_scalar(value)


def step_scalar(value: float | Tensor) -> float | Tensor:
    """A hyperparameter as a step computes with it: a float, or under ``torch.compile`` a 0-d tensor.

    A compiled step keeps a tensor hyperparameter a tensor, in float64 (the precision of the eager
    step's Python arithmetic): :func:`as_float` would break the graph and bake the value in.
    """
    if isinstance(value, Tensor) and torch.compiler.is_compiling():
        return value.detach().reshape(()).to(torch.float64)
    return as_float(value)


def is_graph_tensor(value: Any) -> bool:
    """Whether ``value`` (a number, tensor or list of them) holds a tensor that autograd tracks."""
    if isinstance(value, list):
        return any(is_graph_tensor(item) for item in value)
    return isinstance(value, Tensor) and value.requires_grad


@dataclass
class Direction:
    """An update direction ``scale * numerator / denominator`` (``denominator`` may be ``None``).

    The engine applies ``param <- param - lr * direction`` with a single ``_foreach_addcdiv_`` (or
    ``_foreach_add_``), so the common ``m / (sqrt(v) + eps)`` quotient is never materialised. With
    ``lr_scaled=False`` the direction already holds the learning rate (Graves's RMSprop keeps it inside
    its buffer) and is applied as ``param <- param - direction``. ``scale`` may be one float for all
    tensors or a list with one float per tensor; in a compiled or differentiable step it may be a tensor
    (0-d: shared, 1-D: one entry per tensor).
    """

    numerator: list[Tensor]
    denominator: list[Tensor] | None = None
    scale: float | list[float] | Tensor = 1.0
    lr_scaled: bool = True


# What a chain may return: one direction, several applied in turn (NAdam's gradient and momentum terms
# have different coefficients), or None (no move this step).
Directions = Direction | tuple[Direction, ...] | None


@dataclass(slots=True)
class Update:
    """What a transform sees: one bucket of a param group (params of one device, dtype and state layout).

    ``params``, ``grads`` and every list in ``state`` are aligned and complex tensors arrive as real
    views. ``step`` is the 1-based count of this update (already incremented in ``state["step"]``): an
    int, or under ``torch.compile`` a 1-D float64 tensor with one count per parameter. A transform may set
    ``decay_multiplier`` (a float, or a tensor in a compiled step) to scale this step's decoupled weight
    decay, e.g. to 0 on a step that does not move (the RAdam authors' code).
    """

    group: dict[str, Any]
    params: list[Tensor]
    grads: list[Tensor]
    state: dict[str, list[Any]]
    step: int | Tensor
    decay_multiplier: float | Tensor = 1.0
    sums: list[Tensor] | None = None  # this bucket's partial sums of the chain's UpdateSums

    def add_sums(self, sums: list[Tensor]) -> None:
        """Hand the engine this bucket's partial sums for the chain's :class:`UpdateSums` (0-d tensors,
        in a fixed order)."""
        self.sums = sums

    def number(self, key: str) -> float:
        """``group[key]`` as a Python float."""
        return float(self.group[key])

    def hyper(self, key: str) -> Any:
        """``group[key]`` as :func:`hyperparameter` reads it (a tensor where autograd or compile needs it)."""
        return hyperparameter(self.group, key)


@dataclass(frozen=True)
class Hyperparameter:
    """A param-group key a transform reads, with its default and check (``None``: the common check)."""

    name: str
    default: Any = inspect.Parameter.empty
    check: Check | None = None
    annotation: str | None = None  # as the signature shows it; by default from the default's type

    def checker(self) -> Check | None:
        return self.check or COMMON_CHECKS.get(self.name)

    def annotation_for(self, default: Any) -> str:
        """The annotation of this argument with ``default`` (a flag, an optional flag, a pair, a real)."""
        if self.annotation is not None:
            return self.annotation
        if isinstance(default, bool):
            return "bool"
        if default is None:
            return "bool | None"
        if isinstance(default, tuple):
            return "tuple[float, float]"
        return "float"


def zeros_like_param(group: dict[str, Any], param: Tensor) -> Tensor:
    """The default state initialiser: zeros shaped like the parameter (torch's ``preserve_format``)."""
    return torch.zeros_like(param, memory_format=torch.preserve_format)


@dataclass(frozen=True)
class State:
    """A per-parameter state entry: torch's key name, an initialiser, and when it exists.

    ``init(group, param)`` returns the value (any shape; ``None`` for a value the transform creates on
    first use, as torch's SGD copies the first gradient into ``momentum_buffer``); ``when(group, param)``
    decides at state creation whether the entry exists (an Adafactor-style row and column only for a
    matrix); ``when_group(group)`` is such a condition on the group alone (``max_exp_avg_sq`` only with
    ``amsgrad``), which the engine may ask once per group and step instead of once per parameter: an
    optimizer whose every entry has a false ``when_group`` (plain SGD) creates no state at all.
    ``float64``: a float64 scalar on the CPU whatever the parameter dtype, kept so by ``load_state_dict``
    (torch would cast it to the parameter's dtype). ``shared_by_blocks``: a 0-d value of its tensor that
    the chain only reads where it is elementwise (SWATS's switch scalars, written by its
    :class:`UpdateSums`'s finish): each cache-sized block of the tensor gets the value itself.
    """

    name: str
    init: Callable[[dict[str, Any], Tensor], Any] = zeros_like_param
    when: Callable[[dict[str, Any], Tensor], bool] | None = None
    float64: bool = False
    when_group: Callable[[dict[str, Any]], bool] | None = None
    shared_by_blocks: bool = False


def step_counter(group: dict[str, Any], param: Tensor) -> Tensor:
    """A fresh ``state["step"]`` tensor, on the CPU with torch's dtype (as torch.optim stores it)."""
    return torch.tensor(0.0, dtype=scalar_dtype())


# The step count, declared by every transform whose update depends on it (torch keeps it as "step").
STEP = State("step", step_counter)


@dataclass(frozen=True)
class GroupState:
    """A group-level state entry, kept in the param group under ``name`` (saved and loaded with it).

    ``init(group)`` gives its first value, set when the group first steps (also for a group loaded from
    a torch state_dict that lacks it). Transforms replace the value (``group[name] = new``) rather than
    update it in place, so a ``state_dict()`` taken earlier keeps the value it had.

    ``advance(group)``, if given, returns the entry's value for this step; the engine calls it once per
    group per ``step()``, before any bucket of the group runs, in declaration order (so a later entry
    reads the earlier ones' new values). A value that must change once per step (Schedule-Free's step
    count and running weight sum) belongs here: a transform runs once per bucket, block or parameter.
    """

    name: str
    init: Callable[[dict[str, Any]], Any]
    advance: Callable[[dict[str, Any]], Any] | None = None


@dataclass(frozen=True)
class GroupReduction:
    """Sums over every parameter of a param group, taken in a first phase before any update.

    The engine steps a group bucket by bucket (one device, dtype and state layout each), so a quantity
    summed over the whole group (Prodigy's ``<g, x0 - x>`` and ``||s||_1``) must be complete before the
    first bucket moves. Phase one calls ``accumulate(update)`` on each bucket, with the gradient the
    chain will see (after ``maximize`` and coupled weight decay) and the parameters not yet moved; it
    may update its own state in place and returns the bucket's partial sums, 0-d tensors in a fixed
    order. The engine adds them across buckets in float64 (on the first bucket's device) and calls
    ``finish(group, totals)`` once, which writes the group state the chain then reads in phase two.
    A group without gradients takes neither phase.
    """

    accumulate: Callable[[Update], Sequence[Tensor]]
    finish: Callable[[dict[str, Any], list[Tensor]], None]


@dataclass(frozen=True)
class UpdateSums:
    """Sums over a param group that a transform takes from the update it computes, finished on the host
    after the whole group stepped: a decision about the *next* step (SWATS's switch test on ``p^T g`` and
    ``p^T p`` of this Adam step), where a :class:`GroupReduction` is one about this step.

    The transform hands each bucket's partial sums to :meth:`Update.add_sums`, in the loop that computes
    the update (a generated kernel returns them); the engine adds them across buckets, blocks and the
    kernel's parts in float64 and calls ``finish(group, states, totals)`` once, with the state of every
    parameter of the group that stepped. Under the user's ``torch.compile`` of the step the engine takes
    none (a finish reads floats on the host): a transform there decides on tensors itself.
    """

    finish: Callable[[dict[str, Any], list[dict[str, Any]], list[Tensor]], None]


@dataclass(frozen=True)
class Transform:
    """A named step of an algorithm's chain with its declarations (see the module docstring)."""

    name: str
    update: Callable[[Update, Direction], Directions]
    hyperparameters: tuple[Hyperparameter, ...] = ()
    state: tuple[State, ...] = ()
    group_state: tuple[GroupState, ...] = ()
    elementwise: bool | Callable[[dict[str, Any]], bool] = True
    reduction: GroupReduction | None = None
    update_sums: UpdateSums | None = None
    kernel_constants: Callable[[dict[str, Any], dict[str, list[Tensor]]], dict[str, Any]] | None = None


def transform(
    *,
    hyperparameters: Iterable[Hyperparameter] = (),
    state: Iterable[State] = (),
    group_state: Iterable[GroupState] = (),
    elementwise: bool | Callable[[dict[str, Any]], bool] = True,
    reduction: GroupReduction | None = None,
    update_sums: UpdateSums | None = None,
    kernel_constants: Callable[[dict[str, Any], dict[str, list[Tensor]]], dict[str, Any]] | None = None,
) -> Callable[[Callable[[Update, Direction], Directions]], Transform]:
    """Make ``update(update, direction) -> directions`` a :class:`Transform` with these declarations."""

    def declare(function: Callable[[Update, Direction], Directions]) -> Transform:
        return Transform(
            function.__name__,
            function,
            tuple(hyperparameters),
            tuple(state),
            tuple(group_state),
            elementwise,
            reduction,
            update_sums,
            kernel_constants,
        )

    return declare


@dataclass(frozen=True)
class EvaluationPoint:
    """Where the gradient is evaluated, when that is not the iterate (Nesterov, Schedule-Free).

    Between steps the parameters hold the evaluation point. ``to_iterate(update)`` moves them to the
    iterate before the chain runs (after coupled weight decay, whose gradient belongs to the evaluation
    point); ``to_evaluation(update, directions)`` returns the directions that move the iterate to the
    next evaluation point (it may fold that move into the chain's own direction, as Nesterov's does), or
    moves the parameters itself for a point that is not a step away (Schedule-Free's interpolation).
    """

    name: str
    to_iterate: Callable[[Update], None]
    to_evaluation: Callable[[Update, Directions], Directions]
    hyperparameters: tuple[Hyperparameter, ...] = ()
    state: tuple[State, ...] = ()
    elementwise: bool = True


@dataclass(frozen=True)
class Signature:
    """A constructor's parameters in order (``"*"`` starts the keyword-only ones) and their defaults.

    Defaults not given here come from the declarations (transforms, then the engine's own keys), so a
    class that torch also has lists torch's order and overrides only the defaults that differ by
    algorithm (every ``lr``; Adagrad's ``eps``). ``fixed`` keys are written into every group without
    being arguments (AdamW's ``decoupled_weight_decay=True``).
    """

    names: tuple[str, ...]
    defaults: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def arguments(
    *names: str,
    fixed: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    **defaults: Any,
) -> Signature:
    """A :class:`Signature` from space-separated names: ``arguments("lr betas * foreach", lr=1e-3)``."""
    return Signature(
        tuple(name for part in names for name in part.split()),
        defaults,
        dict(fixed or {}),
        dict(annotations or {}),
    )


def build_init(cls: type, declared: dict[str, Hyperparameter], sig: Signature) -> Callable[..., None]:
    """The ``__init__`` of ``cls`` for ``sig``, with an ``inspect`` signature that lists every argument."""
    parameters = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Any"),
    ]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    for name in sig.names:
        if name == "*":
            kind = inspect.Parameter.KEYWORD_ONLY
            continue
        if name == "variant":
            parameters.append(inspect.Parameter(name, kind, default=cls.variants[0], annotation="str"))
            continue
        if name not in declared:
            raise TypeError(f"{cls.__name__}: signature names {name!r}, which no transform declares")
        default = sig.defaults.get(name, declared[name].default)
        annotation = sig.annotations.get(name) or declared[name].annotation_for(default)
        parameters.append(inspect.Parameter(name, kind, default=default, annotation=annotation))
    init_signature = inspect.Signature(parameters, return_annotation="None")

    def generated_init(self: Any, params: Any, *args: Any, **kwargs: Any) -> None:
        try:
            bound = init_signature.bind(self, params, *args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{type(self).__name__}(): {error}") from None
        bound.apply_defaults()
        defaults = {name: value for name, value in bound.arguments.items() if name not in ("self", "params")}
        self.construct(params, {**defaults, **sig.fixed})

    generated_init.__signature__ = init_signature  # type: ignore[attr-defined]
    generated_init.__name__ = "__init__"
    generated_init.__qualname__ = f"{cls.__name__}.__init__"
    generated_init.__doc__ = f"Build a {cls.__name__}; the arguments and defaults are in the class docstring."
    return generated_init


def declared_hyperparameters(parts: Sequence[Any]) -> dict[str, Hyperparameter]:
    """Every hyperparameter the ``parts`` (transforms, evaluation point, engine) declare, first one wins."""
    declared: dict[str, Hyperparameter] = {}
    for part in parts:
        for hyper in part.hyperparameters:
            declared.setdefault(hyper.name, hyper)
    return declared
