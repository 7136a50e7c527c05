"""Scalar factors of the rules: Python floats in an eager step, tensors in a compiled one.

Under ``torch.compile`` the engine hands the rules the step counts of a bucket as one 1-D tensor (one
entry per parameter) and tensor hyperparameters as 0-d tensors, so the graph takes them as inputs
instead of reading them on the host (a graph break) or baking their values in (a recompile whenever a
scheduler changes them). A factor derived from them is then a 0-d tensor (shared by every parameter)
or a 1-D tensor (one entry per parameter); :func:`per_tensor` turns the latter into the list the
multi-tensor kernels take. :func:`norms` reduces each tensor to one such scalar.
"""

from __future__ import annotations

import torch
from torch import Tensor


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
