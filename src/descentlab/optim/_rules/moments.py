"""Running averages and accumulators of gradients: the state-carrying half of most algorithms."""

from __future__ import annotations

import torch
from torch import Tensor

from descentlab.optim._rules.scalars import per_tensor, scalar_operand


def ema_(averages: list[Tensor], values: list[Tensor], decay: float | Tensor) -> None:
    """Exponential moving average ``a <- decay * a + (1 - decay) * x`` in place (one lerp kernel).

    A tensor ``decay`` (a differentiable or compiled step; 1-D: one entry per tensor) takes two kernels:
    lerp has no tensor-weight form.
    """
    if isinstance(decay, Tensor):
        torch._foreach_mul_(averages, per_tensor(decay))
        torch._foreach_add_(averages, torch._foreach_mul(values, per_tensor(1.0 - decay)))
        return
    torch._foreach_lerp_(averages, values, 1.0 - decay)


def lerp_(starts: list[Tensor], ends: list[Tensor], weight: float | Tensor) -> None:
    """``start <- lerp(start, end, weight)`` in place, aten's two-sided formula bit for bit.

    A float ``weight`` is one multi-tensor kernel. A 0-d tensor ``weight`` (inside the generated kernel)
    goes through the formula per tensor, which inductor fuses into the step's one loop: its
    ``_foreach_lerp`` with tensor weights is a separate library call into a new buffer (one more pass
    over memory, and a copy).
    """
    if not isinstance(weight, Tensor):
        torch._foreach_lerp_(starts, ends, weight)
        return
    for start, end in zip(starts, ends):
        difference = end - start
        near, far = start + weight * difference, end - difference * (1 - weight)
        start.copy_(torch.where(weight < 0.5, near, far))


def ema_of_squares_(averages: list[Tensor], values: list[Tensor], decay: float | Tensor) -> None:
    """``a <- decay * a + (1 - decay) * x * x`` in place (second-moment estimate)."""
    if isinstance(decay, Tensor):
        torch._foreach_mul_(averages, per_tensor(decay))
        # addcmul's ``value`` must be a number; the product keeps autograd's path to ``decay``.
        squares = torch._foreach_mul(values, values)
        torch._foreach_add_(averages, torch._foreach_mul(squares, per_tensor(1.0 - decay)))
        return
    torch._foreach_mul_(averages, scalar_operand(decay, averages))
    torch._foreach_addcmul_(averages, values, values, value=1.0 - decay)


def accumulate_squares_(sums: list[Tensor], values: list[Tensor]) -> None:
    """``s <- s + x * x`` in place (AdaGrad's accumulator)."""
    torch._foreach_addcmul_(sums, values, values, value=1.0)


def trace_(buffers: list[Tensor], values: list[Tensor], momentum: float, dampening: float = 0.0) -> None:
    """Heavy-ball momentum ``b <- momentum * b + (1 - dampening) * x`` in place (torch's SGD buffer)."""
    torch._foreach_mul_(buffers, scalar_operand(momentum, buffers))
    torch._foreach_add_(buffers, values, alpha=1.0 - dampening)


def running_max_(maxima: list[Tensor], values: list[Tensor]) -> None:
    """``m <- max(m, x)`` elementwise in place (AMSGrad's maximum, AdaMax's infinity norm)."""
    torch._foreach_maximum_(maxima, values)
