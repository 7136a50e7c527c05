"""Denominators that scale a direction by a root-mean-square estimate, with their eps conventions.

Every eps reaches the tensors through :func:`nonvanishing_eps`, so an eps too small for a low-precision
dtype (the default 1e-8 in float16) is raised to that dtype's smallest normal number instead of
rounding to 0 and turning a coordinate without gradient into 0/0 = NaN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from descentlab.optim._rules.scalars import add_scalar, add_scalar_, per_tensor, scalar_operand


def bias_correction(beta: float | Tensor, step: int | Tensor) -> float | Tensor:
    """``1 - beta**step``: the factor that un-biases an EMA started at zero (Kingma & Ba 2015, sec. 3).

    A tensor ``beta`` (a differentiable step) gives a tensor, so autograd sees the dependence; a tensor
    ``step`` (a compiled step: one count per parameter) gives one correction per parameter.
    """
    return 1.0 - beta**step


def nonvanishing_eps(eps: float | Tensor, values: list[Tensor]) -> float | Tensor:
    """``eps``, or the smallest positive normal number of ``values``' dtype where ``eps`` is below it.

    An eps the dtype cannot hold rounds to 0 (float16's 1e-8 does: its smallest positive value is 6e-8),
    and ``0 / (0 + eps)`` becomes NaN for every coordinate whose gradients were all 0. Raising eps to
    the smallest *normal* number (6.1e-5 in float16) rather than to the smallest subnormal also bounds
    ``m / eps`` where ``v`` underflowed to 0 but ``m`` did not, and survives flush-to-zero arithmetic.
    Any eps the dtype holds as a normal number (every default, in float32, float64 and bfloat16) is
    returned unchanged, so those results stay bit-for-bit torch.optim's. A tensor ``eps`` (a compiled
    step's, such as Prodigy's ``d eps``) is clamped the same way.
    """
    if not values:
        return eps
    dtype = values[0].dtype
    tiny = _SMALLEST_NORMAL.get(dtype)
    tiny = torch.finfo(dtype).tiny if tiny is None else tiny
    return eps.clamp(min=tiny) if isinstance(eps, Tensor) else max(eps, tiny)


# torch.finfo(dtype).tiny, read from a plain dict (a step asks for it in every kernel with eps; dynamo warns
# when it traces a functools.cache wrapper).
_SMALLEST_NORMAL = {
    dtype: torch.finfo(dtype).tiny for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64)
}


def square_root(value: float | Tensor) -> float | Tensor:
    """``sqrt(value)`` of a float (correctly rounded, ``math.sqrt``) or of a scalar tensor (autograd)."""
    return value.sqrt() if isinstance(value, Tensor) else math.sqrt(value)


def root_plus_eps(
    squares: list[Tensor], eps: float | Tensor, correction: float | Tensor = 1.0
) -> list[Tensor]:
    """``sqrt(v / correction) + eps`` as a new list: eps outside the root (Adam, torch's RMSprop).

    Computed as ``sqrt(v) / sqrt(correction) + eps``, the order torch.optim uses. A 1-D tensor
    ``correction`` (a compiled step) holds one entry per tensor.
    """
    denominator = torch._foreach_sqrt(squares)
    if torch.is_grad_enabled():
        # A differentiable step: the root's backward reads the root, so it must not change in place.
        if isinstance(correction, Tensor) or correction != 1.0:
            denominator = torch._foreach_div(denominator, square_root(correction))
        return torch._foreach_add(denominator, nonvanishing_eps(eps, squares))
    if isinstance(correction, Tensor):
        torch._foreach_div_(denominator, per_tensor(correction.sqrt()))
    elif correction != 1.0:
        torch._foreach_div_(denominator, scalar_operand(math.sqrt(correction), denominator))
    add_scalar_(denominator, nonvanishing_eps(eps, squares))
    return denominator


def root_with_eps_inside(squares: list[Tensor], eps: float) -> list[Tensor]:
    """``sqrt(v + eps)`` as a new list: eps inside the root (Hinton's RMSprop notes, AdaDelta)."""
    if torch.is_grad_enabled():
        # A differentiable step: the multi-tensor add would save ``squares``, which callers then update
        # in place (Adadelta's accumulator), and callers may divide the root in place; neither is saved here.
        eps = nonvanishing_eps(eps, squares)
        return [torch.sqrt(square + eps) for square in squares]
    denominator = plus_eps(squares, eps)
    torch._foreach_sqrt_(denominator)
    return denominator


def plus_eps(values: list[Tensor], eps: float) -> list[Tensor]:
    """``x + eps`` as a new list (Keras's AdaMax denominator), eps as :func:`nonvanishing_eps` keeps it."""
    return add_scalar(values, nonvanishing_eps(eps, values))
