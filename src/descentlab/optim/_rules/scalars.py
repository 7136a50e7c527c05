"""Scalar factors of the rules: Python floats in an eager step, tensors in a compiled one.

Under ``torch.compile`` the engine hands the rules the step counts of a bucket as one 1-D tensor (one
entry per parameter) and tensor hyperparameters as 0-d tensors, so the graph takes them as inputs
instead of reading them on the host (a graph break) or baking their values in (a recompile whenever a
scheduler changes them). A factor derived from them is then a 0-d tensor (shared by every parameter)
or a 1-D tensor (one entry per parameter); :func:`per_tensor` turns the latter into the list the
multi-tensor kernels take. :func:`norms` reduces each tensor to one such scalar, and
:func:`increment_counts_` advances the step counts.

A Python float is a slow argument of an eager multi-tensor ``mul``, ``div`` or ``add`` on the CPU: the
kernel wraps it in a new 0-d tensor for every tensor of the list, about 1 µs each (200 µs a call on the
196 tensors of a small transformer; 3 to 4 such calls an Adam step). :func:`scalar_operand` hands those
kernels a cached 0-d tensor instead, which they read as the same scalar: the results are bit for bit the
float's (checked in float32 and float64 over 24000 random cases; in bfloat16 and float16 they are not,
so those keep the float).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import repeat
from operator import attrgetter, is_
from typing import Any

import torch
from torch import Tensor

_OPERANDS: dict[tuple[float, torch.dtype], Tensor] = {}  # see scalar_operand
_OPERAND_DTYPES = frozenset((torch.float32, torch.float64))
_OPERANDS_KEPT = 256  # hyperparameters repeat; factors that change every step would fill the cache
_PLAIN_TYPES = frozenset((Tensor, torch.nn.Parameter))
_dtype = attrgetter("dtype")
# torch's CPU norm kernel sums a float32 tensor in one float32 accumulator per thread and vector lane, so
# its error grows with the length: 1.2e-3 relative in the 2-norm of 25M elements, 8.6e-3 in the 1-norm
# (pytorch/pytorch#169237, #151761; torch.sum, which cascades, is within 1e-7). Norms of pieces this long
# are within 3e-7 and cost the same pass; :func:`norms` combines them in float64.
_NORM_PIECE = 1 << 16
_EXACT_DTYPES = frozenset((torch.float64, torch.complex128))


def per_tensor(factor: float | Tensor) -> float | Tensor | list[Tensor]:
    """``factor`` as a multi-tensor kernel's scalar argument: a 1-D tensor becomes one 0-d tensor per entry.

    Floats and 0-d tensors (one value for every tensor of the list) are returned unchanged.
    """
    if isinstance(factor, Tensor) and factor.dim() == 1:
        return list(factor.unbind())
    return factor


def norms(tensors: list[Tensor], ord: float = 2.0) -> list[Tensor]:
    """The ``ord``-norm of each tensor (0-d): one multi-tensor kernel eagerly, fused reductions compiled.

    Inductor lowers ``_foreach_norm`` to aten's kernel, a pass over memory of its own (and the tensor it
    reads must be stored first); a per-tensor ``vector_norm`` is a reduction it fuses into the loop that
    computes the tensor, and sums in blocks. Eagerly a long float32 tensor on the CPU is normed in pieces
    of ``_NORM_PIECE`` elements, combined in float64 (torch's CPU kernel alone is off by 1e-3 at 25M
    elements); every other tensor, and every ``inf``-norm, is aten's kernel's alone.
    """
    if torch.compiler.is_compiling():
        return [torch.linalg.vector_norm(tensor, ord) for tensor in tensors]
    coarse = [_summed_coarsely(tensor) for tensor in tensors] if math.isfinite(ord) and ord > 0 else []
    if not any(coarse):
        return torch._foreach_norm(tensors, ord)
    pieces, counts = [], []
    for tensor, cut in zip(tensors, coarse):
        parts = tensor.reshape(-1).split(_NORM_PIECE) if cut else (tensor,)
        pieces.extend(parts)
        counts.append(len(parts))
    partials, start, result = torch._foreach_norm(pieces, ord), 0, []
    for count in counts:
        norm = partials[start]
        if count > 1:
            stacked = torch.stack(partials[start : start + count]).to(torch.float64)
            norm = stacked.pow(ord).sum().pow(1.0 / ord).to(norm.dtype)
        result.append(norm)
        start += count
    return result


def _summed_coarsely(tensor: Tensor) -> bool:
    """Whether aten's CPU norm kernel would lose precision on ``tensor`` (a long, not float64, plain one;
    a DTensor's norm is its own dispatch's)."""
    return (
        type(tensor) in _PLAIN_TYPES
        and tensor.numel() > _NORM_PIECE
        and tensor.dtype not in _EXACT_DTYPES
        and tensor.device.type == "cpu"
    )


def increment_counts_(counts: list[Tensor]) -> None:
    """``count <- count + 1`` for every step count in ``counts``, one multi-tensor kernel.

    Eagerly the one is :func:`scalar_operand`'s cached 0-d tensor, as torch.optim adds a 0-d one: the
    scalar form costs about 1.2 µs a count (the 0-d counts of 196 tensors: 230 against 80 µs). Integer
    counts and counts of mixed dtypes (a float one would fail to cast into an integer count) add the
    integer 1, as does a compiled step.
    """
    one = scalar_operand(1.0, counts)
    if isinstance(one, Tensor):
        torch._foreach_add_(counts, one, alpha=1)
    else:
        torch._foreach_add_(counts, 1)


def scalar_operand(value: float | Tensor, tensors: list[Tensor]) -> float | Tensor:
    """``value`` as the scalar argument of ``_foreach_mul(_)`` or ``_foreach_div(_)`` over ``tensors``.

    A float becomes a cached 0-d tensor of the tensors' dtype where that is the faster and exact form
    (see the module docstring): an eager step without autograd, over at least two plain CPU tensors all
    float32 or all float64 (a DTensor refuses a plain tensor argument, and a tensor of another dtype
    would compute with the operand's rounding; a compiled step keeps floats as constants). Anything
    else is returned unchanged. An add takes it through :func:`add_scalar_` or :func:`add_scalar`: a 0-d
    tensor without ``alpha`` selects the slow scalar form again.
    """
    if (
        type(value) is not float
        or value == 0  # -0.0 and 0.0 would share a key
        or len(tensors) < 2
        or torch.compiler.is_compiling()
        or torch.is_grad_enabled()
    ):
        return value
    first = tensors[0]
    dtype = first.dtype
    if (
        dtype not in _OPERAND_DTYPES
        or not first.is_cpu
        or not all(map(is_, map(_dtype, tensors), repeat(dtype)))
        or not _PLAIN_TYPES.issuperset(map(type, tensors))
    ):
        return value
    key = (value, dtype)
    operand = _OPERANDS.get(key)
    if operand is None:
        if len(_OPERANDS) >= _OPERANDS_KEPT:
            _OPERANDS.clear()
        with torch.inference_mode(False):  # usable outside the inference_mode of the step that made it
            operand = _OPERANDS[key] = torch.tensor(value, dtype=dtype)
    return operand


def add_scalar_(tensors: list[Tensor], value: float | Tensor) -> None:
    """``x <- x + value`` in place for every tensor, with :func:`scalar_operand`'s fast form."""
    _add_scalar(torch._foreach_add_, tensors, value)


def add_scalar(tensors: list[Tensor], value: float | Tensor) -> list[Tensor]:
    """``x + value`` for every tensor, as a new list, with :func:`scalar_operand`'s fast form."""
    return _add_scalar(torch._foreach_add, tensors, value)


def _add_scalar(add: Callable[..., Any], tensors: list[Tensor], value: float | Tensor) -> Any:
    operand = scalar_operand(value, tensors)
    return add(tensors, value) if operand is value else add(tensors, operand, alpha=1)
