"""Scalar factors of the rules: Python floats in an eager step, tensors in a compiled one.

Under ``torch.compile`` the engine hands the rules the step counts of a bucket as one 1-D tensor (one
entry per parameter) and tensor hyperparameters as 0-d tensors, so the graph takes them as inputs
instead of reading them on the host (a graph break) or baking their values in (a recompile whenever a
scheduler changes them). A factor derived from them is then a 0-d tensor (shared by every parameter)
or a 1-D tensor (one entry per parameter); :func:`per_tensor` turns the latter into the list the
multi-tensor kernels take. :func:`norms` reduces each tensor to one such scalar, and
:func:`increment_counts_` advances the step counts.
"""

from __future__ import annotations

from itertools import repeat
from operator import attrgetter, is_

import torch
from torch import Tensor

_ONES: dict[torch.dtype, Tensor] = {}  # the 0-d one of each count dtype (see increment_counts_)
_dtype = attrgetter("dtype")


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
    computes the tensor.
    """
    if torch.compiler.is_compiling():
        return [torch.linalg.vector_norm(tensor, ord) for tensor in tensors]
    return torch._foreach_norm(tensors, ord)


def increment_counts_(counts: list[Tensor]) -> None:
    """``count <- count + 1`` for every step count in ``counts``, one multi-tensor kernel.

    An eager step adds a cached 0-d one of the counts' dtype (``_foreach_add_(counts, one, alpha=1)``,
    torch.optim's form): the scalar form ``_foreach_add_(counts, 1)`` wraps the 1 in a new tensor for
    each count, about 3x as slow on the CPU (1.2 µs a count, 150 µs a step on 196 tensors; without
    ``alpha``, the tensor form is as slow). A compiled step, where the constant folds, and counts of
    mixed dtypes (a one of another dtype would promote, or fail to cast into an integer count) keep the
    scalar form.
    """
    dtype = counts[0].dtype
    if torch.compiler.is_compiling() or not all(map(is_, map(_dtype, counts), repeat(dtype))):
        torch._foreach_add_(counts, 1)
        return
    one = _ONES.get(dtype)
    if one is None:
        with torch.inference_mode(False):  # usable outside the inference_mode of a first step
            one = _ONES[dtype] = torch.ones((), dtype=dtype)
    torch._foreach_add_(counts, one, alpha=1)
