"""The aligned lists one multi-tensor update takes (:class:`Bucket`), and the plan that rebuilds a
group's buckets from one step to the next without bucketing it again (:class:`BucketPlan`)."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterator, Set
from itertools import chain, compress, repeat
from operator import attrgetter, is_, is_not, itemgetter
from typing import Any

import torch
from torch import Tensor
from torch.nn import Parameter


class Bucket:
    """Aligned lists for one (device, dtype, step) group: params, grads, state values and their owners.

    A state value may be ``None`` until the algorithm creates it on first use (torch's SGD momentum
    buffer is a copy of the first gradient); :meth:`store_created_state` writes such values back.
    """

    def __init__(self) -> None:
        self.params: list[Tensor] = []
        self.grads: list[Tensor] = []
        self.state: dict[str, list[Any]] = defaultdict(list)
        self.owners: list[dict[str, Any]] = []
        self.complex_flags: list[bool] = []
        self.created_on_use = False  # a state value is None: created on first use, to store back
        self.counts: list[Tensor] = []  # step counts still to increment (a generated group's buckets)
        self.part_of = 0  # the tensor count of the bucket this one is a part of (see part); 0: none
        # What the engine derives from a planned bucket's layout (its kernel parts), shared by the buckets
        # a BucketPlan hands out step after step; None where the bucket was not planned.
        self.cache: dict[Any, Any] | None = None

    def add(self, param: Tensor, grad: Tensor, param_state: dict[str, Any], is_complex: bool) -> None:
        self.params.append(param)
        self.grads.append(grad)
        self.owners.append(param_state)
        self.complex_flags.append(is_complex)
        state = self.state
        for name, value in param_state.items():
            if name == "step":
                continue
            if value is None:
                self.created_on_use = True
            # State is created like its parameter and load_state_dict casts it to the parameter's dtype,
            # so only a complex parameter has complex state.
            elif is_complex and isinstance(value, Tensor) and torch.is_complex(value):
                value = torch.view_as_real(value)
            state[name].append(value)

    def needs_blocks(self, block_numel: int) -> bool:
        """Whether cutting into blocks can change how this bucket runs: it has state (see
        :meth:`blockable`) and a tensor over ``block_numel`` elements, or one that is not a plain tensor
        (:meth:`blockable` takes a DTensor's local shard). Otherwise the blocked path is one block of the
        whole tensors, which the unblocked path runs the same, without building the block."""
        if not self.state:
            return False
        for param in self.params:
            if param.numel() > block_numel or (type(param) is not Tensor and type(param) is not Parameter):
                return True
        return False

    def step_count(self, step: int) -> int | Tensor:
        """The ``step`` argument of ``direction``: the bucket's key, or its parameters' counts (compiled).

        An eager step buckets parameters by their (incremented) count, read on the host. A compiled step
        must not read it there, so it passes the counts themselves, stacked in float64 (the precision of
        the eager step's Python arithmetic): one entry per parameter, already incremented.
        """
        counts = [owner["step"] for owner in self.owners if "step" in owner]
        if not counts or not torch.compiler.is_compiling():
            return step
        return torch.stack(counts).to(torch.float64)

    def select(self, index: int) -> Bucket:
        """A one-parameter bucket sharing this one's tensors (the ``foreach=False`` path)."""
        single = Bucket()
        single.params = [self.params[index]]
        single.grads = [self.grads[index]]
        single.state = {name: [values[index]] for name, values in self.state.items()}
        single.owners = [self.owners[index]]
        single.complex_flags = [self.complex_flags[index]]
        single.created_on_use = self.created_on_use
        return single

    def traceable(
        self, elementwise: bool, stateless: bool = False, shared: Set[str] = frozenset()
    ) -> Bucket | None:
        """This bucket as the generated kernel takes it, or ``None``: plain tensors whole, in one call.

        The kernel traces the eager multi-tensor update itself, so it takes whatever strides and state
        shapes that update takes (NAdam's 0-d ``mu_product``; dynamo's guards specialise the call on
        them), and checking only the parameters' types keeps the call cheap (checking every tensor's
        layout cost ~0.6 ms a step on 196 tensors). A bucket with a DTensor goes as its local shards
        (:meth:`blockable`, with the ``shared`` state) for an ``elementwise`` chain; for one with per-tensor
        reductions (LAMB's norms) or sums over the group (``UpdateSums``) a shard's norm or sum is not
        the tensor's, so it is ``None``, as is a bucket without state (one
        kernel already, unless ``stateless``: a wrapper's average is to be fused into it) or with a state
        created on first use (to store back, which the kernel does not).
        """
        if (not self.state and not stateless) or self.created_on_use:
            return None
        for param in self.params:
            if type(param) is not Tensor and type(param) is not Parameter:
                return self.blockable(shared) if elementwise else None
        return self

    def blockable(self, shared: Set[str] = frozenset(), local_shards: bool = True) -> Bucket | None:
        """This bucket over plain contiguous tensors whose flat slices alias them, or ``None``.

        Blocks pay and work only with some state (plain SGD is one kernel: slicing adds overhead) and
        every state value shaped like its parameter. A flat slice of anything but a plain contiguous
        tensor may be a copy (a slice of a sharded DTensor is all-gathered to ``Replicate``), and an
        update written into a copy is lost; so a DTensor whose gradient and state share its layout is
        replaced by its local shard (an elementwise update of the shard is the update of its part), and
        any other tensor sends the whole bucket down the unblocked path. Without ``local_shards`` (a
        chain that sums over the group: a shard's sum is not the tensor's) a DTensor does too.

        The entries named in ``shared`` are 0-d values of their tensor that the chain only reads (SWATS's
        switch scalars, declared ``State(shared_by_blocks=True)``): not shaped like the parameter, they
        go to each of its blocks whole (:meth:`blocks`).
        """
        if not self.state:
            return None
        columns = [values for name, values in self.state.items() if name not in shared]
        local_shards = local_shards and not shared  # _local_shard_bucket slices every state entry
        grads = self.grads
        # The common case, checked without building lists. Equal element counts suffice with contiguity:
        # an elementwise chain computes the same values for a state shaped (1, n) as for (n,), and a flat
        # slice of each covers the same elements (comparing sizes costs 3x as much on 196 tensors).
        for index, param in enumerate(self.params):
            numel = param.numel()
            if (type(param) is not Tensor and type(param) is not Parameter) or not param.is_contiguous():
                return self._local_shard_bucket() if local_shards else None
            for tensor in (grads[index], *[column[index] for column in columns]):
                if (
                    (type(tensor) is not Tensor and type(tensor) is not Parameter)
                    or tensor.numel() != numel
                    or not tensor.is_contiguous()
                ):
                    return self._local_shard_bucket() if local_shards else None
        return self

    def _local_shard_bucket(self) -> Bucket | None:
        """:meth:`blockable` where some tensor is not plain and contiguous: DTensors by their shards."""
        plain = Bucket()
        for index, param in enumerate(self.params):
            state = [values[index] for values in self.state.values()]
            tensors = _local_shards([param, self.grads[index], *state])
            if tensors is None:
                return None
            plain.params.append(tensors[0])
            plain.grads.append(tensors[1])
            for name, value in zip(self.state, tensors[2:]):
                plain.state[name].append(value)
        return plain

    def blocks(self, block_numel: int, shared: Set[str] = frozenset()) -> Iterator[Bucket]:
        """The small tensors as one bucket, then each large tensor in flat slices of ``block_numel``.

        Slicing only pays where a tensor is larger than the cache; small tensors stay whole in one
        multi-tensor call, which avoids creating thousands of views. Call it on :meth:`blockable`'s bucket:
        slices are then views (checked), so updates land in the real tensors. The state entries named in
        ``shared`` go to each block of their tensor whole.
        """
        small = [index for index, param in enumerate(self.params) if param.numel() <= block_numel]
        if small:
            yield self._subset(small, slice(None), shared)
        for index, param in enumerate(self.params):
            numel = param.numel()
            if numel > block_numel:
                for start in range(0, numel, block_numel):
                    yield self._subset([index], slice(start, min(numel, start + block_numel)), shared)

    def part(self, indices: tuple[int, ...]) -> Bucket:
        """The bucket of the whole tensors at ``indices`` (this bucket itself where they are all of it),
        for the generated kernel (see :mod:`descentlab.optim._parts`)."""
        if len(indices) == len(self.params):
            return self
        pick = _picker(indices)
        part = Bucket()
        part.params, part.grads = pick(self.params), pick(self.grads)
        part.state = {name: pick(values) for name, values in self.state.items()}
        part.part_of = len(self.params)
        return part

    def _subset(self, indices: list[int], flat_slice: slice, shared: Set[str] = frozenset()) -> Bucket:
        block = Bucket()
        whole = flat_slice == slice(None)

        def part(tensor: Tensor) -> Tensor:
            return tensor if whole else _flat_alias(tensor)[flat_slice]

        block.params = [part(self.params[i]) for i in indices]
        block.grads = [part(self.grads[i]) for i in indices]
        block.state = {
            name: [values[i] if name in shared else part(values[i]) for i in indices]
            for name, values in self.state.items()
        }
        return block

    def clone_state(self) -> None:
        """Replace every state tensor by a clone (a differentiable step; see :meth:`store_state`).

        The rules update state in place; a tensor the previous step's graph saved for backward must not
        change, so each differentiable step works on new tensors whose graph reaches back to the old ones.
        """
        self.state = {
            name: [value.clone() if isinstance(value, Tensor) else value for value in values]
            for name, values in self.state.items()
        }

    def store_state(self) -> None:
        """Write this bucket's state tensors back to their owners (after :meth:`clone_state`)."""
        for name, values in self.state.items():
            for owner, value, is_complex in zip(self.owners, values, self.complex_flags):
                if value is not None:
                    owner[name] = torch.view_as_complex(value) if is_complex else value

    def store_created_state(self) -> None:
        for name, values in self.state.items():
            for owner, value, is_complex in zip(self.owners, values, self.complex_flags):
                if owner.get(name) is None and value is not None:
                    owner[name] = torch.view_as_complex(value) if is_complex else value


@functools.lru_cache(maxsize=256)
def _picker(indices: tuple[int, ...]) -> Callable[[list[Any]], list[Any]]:
    """A function from a list to the list of its items at ``indices`` (``itemgetter``, in C: a part of a
    196-tensor bucket costs a fifth of a list comprehension's time)."""
    if len(indices) == 1:
        (index,) = indices
        return lambda values: [values[index]]
    getter = itemgetter(*indices)
    return lambda values: list(getter(values))


def _is_plain(tensor: Any) -> bool:
    """Whether ``tensor`` is a ``torch.Tensor`` or ``nn.Parameter`` itself, not a tensor subclass."""
    return type(tensor) is Tensor or type(tensor) is torch.nn.Parameter


@functools.cache
def _dtensor_type() -> type | None:
    """``DTensor``, imported on first need (``None`` where torch is built without distributed)."""
    if not torch.distributed.is_available():
        return None
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch < 2.5
        from torch.distributed._tensor import DTensor
    return DTensor


def is_dtensor(value: Any) -> bool:
    """Whether ``value`` is a ``DTensor`` (a sharded or replicated parameter, its gradient or state)."""
    dtensor = _dtensor_type()
    return dtensor is not None and isinstance(value, dtensor)


def full_float64(value: Tensor | float) -> Tensor:
    """A sum as a plain float64 tensor: a DTensor's full value (a ``Partial`` sum over a bucket of sharded
    parameters reduced over the ranks), as every rank must see it; a shard's sum is not the tensor's."""
    if is_dtensor(value):
        value = value.full_tensor()
    return torch.as_tensor(value).to(torch.float64)


def _local_shards(tensors: list[Any]) -> list[Tensor] | None:
    """A parameter, its gradient and state as plain contiguous tensors of one shape, or ``None``.

    DTensors become their local shards when all share one mesh and placements and none is ``Partial``
    (a partial sum is not the value an elementwise rule must see); under ``no_grad`` ``to_local()`` is
    the shard itself, not a copy.
    """
    shape = tensors[0].shape
    if not all(isinstance(tensor, Tensor) and tensor.shape == shape for tensor in tensors):
        return None
    dtensor = None if _is_plain(tensors[0]) else _dtensor_type()
    if dtensor is not None and isinstance(tensors[0], dtensor):
        layout = (tensors[0].device_mesh, tensors[0].placements)
        if any(placement.is_partial() for placement in layout[1]):
            return None
        for tensor in tensors:
            if not isinstance(tensor, dtensor) or (tensor.device_mesh, tensor.placements) != layout:
                return None
        tensors = [tensor.to_local() for tensor in tensors]
    if all(_is_plain(tensor) and tensor.is_contiguous() for tensor in tensors):
        return tensors
    return None


def _flat_alias(tensor: Tensor) -> Tensor:
    """``tensor`` as a 1-D view of its own memory; raises rather than hand out a copy to update."""
    flat = tensor.view(-1)
    if not (_is_plain(tensor) and type(flat) is Tensor and flat.data_ptr() == tensor.data_ptr()):
        raise RuntimeError(
            f"cache blocking needs a plain contiguous tensor, got {type(tensor).__name__} of shape "
            f"{tuple(tensor.shape)}: updates of its slices would be lost (descentlab bug; set "
            "block_numel = 0 on the optimizer to work around it)"
        )
    return flat


_grad = attrgetter("grad")
_dtype = attrgetter("dtype")
_device = attrgetter("device")
_version = attrgetter("_version")
_is_sparse = attrgetter("is_sparse")


class BucketPlan:
    """How one group was bucketed at its last eager step, reused while nothing it was built from changed.

    Bucketing reads each parameter's gradient, state entry, step count, dtype and device in Python,
    about 5 µs a parameter: 1 ms a step on the 196 tensors of a small transformer, where the compiled
    kernel's whole step takes 10-15 ms. The plan checks the same facts with passes over lists that run
    in C (``map`` with ``operator.is_``), then hands out the buckets again with the new gradients. Each
    of these sends the step back to bucketing, which makes a new plan: another parameter list or set of
    parameters with gradients, a sparse gradient, a parameter's dtype or device changed
    (``param.data = ...``), another ``optimizer.state`` (``load_state_dict``), a state entry or value
    replaced, added or removed (a state created on first use, ``state.clear()``), a step count changed
    by anything but the engine's own increment (its version counter tells), whether state may be
    created, and whether the group runs the generated kernel. Groups with complex parameters, step
    counts not kept on the host (see ``_COUNTED_DTYPES`` in the engine) or a differentiable step are
    never planned. The buckets of one plan share one :attr:`Bucket.cache`, where the engine keeps what it
    derives from their layout (the generated kernel's parts: 38 us a step on 196 tensors).
    """

    def __init__(
        self,
        group: dict[str, Any],
        state: dict[Any, dict[str, Any]],
        buckets: dict[tuple[Any, ...], Bucket],
        steps: list[Tensor],
        flags: tuple[bool, bool],
    ) -> None:
        self.group, self.state, self.flags = group, state, flags
        self.params = tuple(group["params"])
        grads = list(map(_grad, self.params))
        has_grad = [grad is not None for grad in grads]
        self.has_grad = None if all(has_grad) else has_grad  # None: every parameter has a gradient
        self.with_grad = [param for param, grad in zip(self.params, grads) if grad is not None]
        self.dtypes = list(map(_dtype, self.with_grad))
        self.devices = list(map(_device, self.with_grad))
        self.owners = list(map(state.get, self.with_grad))
        self.stateful = [owner for owner in self.owners if owner]
        self.keys = list(chain.from_iterable(self.stateful))
        self.values = list(chain.from_iterable(map(dict.values, self.stateful)))
        # Read before this step's increment, which bumps each counter by one.
        self.steps, self.versions = steps, [version + 1 for version in map(_version, steps)]
        position = {id(param): index for index, param in enumerate(self.with_grad)}
        # Copies without the gradients, which the plan must not keep alive.
        for bucket in buckets.values():
            bucket.cache = {}  # this step's bucket and the plan's later ones share what is derived
        self.buckets = [
            (key, [position[id(param)] for param in bucket.params], _template(bucket))
            for key, bucket in buckets.items()
        ]

    def reuse(
        self, group: dict[str, Any], state: dict[Any, dict[str, Any]], flags: tuple[bool, bool]
    ) -> tuple[dict[tuple[Any, ...], Bucket], list[Tensor]] | None:
        """This step's buckets and the step counts to increment, or ``None`` where the plan is stale."""
        if state is not self.state or flags != self.flags:
            return None
        params = group["params"]
        if len(params) != len(self.params) or not all(map(is_, params, self.params)):
            return None
        grads = list(map(_grad, params))
        if self.has_grad is None:
            if not all(map(is_not, grads, repeat(None))):
                return None
        elif [grad is not None for grad in grads] != self.has_grad:
            return None
        else:
            grads = list(compress(grads, self.has_grad))
        if any(map(_is_sparse, grads)) or not self._same_tensors(state):
            return None
        buckets = {}
        for (device, dtype, step, keys), indices, planned in self.buckets:
            if step:
                step += 1
                if step >= 1 << 24:  # see _MAX_COUNTED_STEP in the engine
                    return None
            bucket = _template(planned)
            bucket.grads = list(map(grads.__getitem__, indices))
            buckets[(device, dtype, step, keys)] = bucket
        self.buckets = [(key, indices, planned) for key, (_, indices, planned) in zip(buckets, self.buckets)]
        self.versions = [version + 1 for version in self.versions]
        return buckets, self.steps

    def _same_tensors(self, state: dict[Any, dict[str, Any]]) -> bool:
        with_grad = self.with_grad
        return (
            list(map(_dtype, with_grad)) == self.dtypes
            and list(map(_device, with_grad)) == self.devices
            and all(map(is_, map(state.get, with_grad), self.owners))
            and list(chain.from_iterable(self.stateful)) == self.keys
            and _all_identical(list(chain.from_iterable(map(dict.values, self.stateful))), self.values)
            and list(map(_version, self.steps)) == self.versions
        )


def _all_identical(left: list[Any], right: list[Any]) -> bool:
    return len(left) == len(right) and all(map(is_, left, right))


def _template(bucket: Bucket) -> Bucket:
    """A copy of ``bucket``'s lists (a transform may rebind them) without its gradients."""
    copy = Bucket()
    copy.params, copy.owners = list(bucket.params), list(bucket.owners)
    # The same defaultdict as a bucket built anew: the generated kernel's guards check the type.
    copy.state.update((name, list(values)) for name, values in bucket.state.items())
    copy.complex_flags, copy.counts = list(bucket.complex_flags), list(bucket.counts)
    copy.created_on_use = bucket.created_on_use
    copy.cache = bucket.cache
    return copy
