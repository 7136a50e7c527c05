"""Weight decay, coupled (L2 added to the gradient) or decoupled (parameters shrunk directly)."""

from __future__ import annotations

import torch
from torch import Tensor

from descentlab.optim._rules.scalars import per_tensor, scalar_operand


def add_decayed_weights(grads: list[Tensor], params: list[Tensor], weight_decay: float) -> list[Tensor]:
    """Coupled (L2) decay: return ``g + weight_decay * theta``; the gradient of ``wd/2 * ||theta||^2``."""
    if weight_decay == 0:
        return grads
    if torch.is_grad_enabled():
        # A differentiable step: the multi-tensor add saves the parameters for backward, and the step
        # then changes them in place; the single-tensor add saves nothing.
        return [torch.add(grad, param, alpha=weight_decay) for grad, param in zip(grads, params)]
    return torch._foreach_add(grads, params, alpha=weight_decay)


def decay_weights_(params: list[Tensor], factor: float | Tensor) -> None:
    """Decoupled decay (Loshchilov & Hutter 2019): ``theta <- (1 - factor) * theta`` in place.

    A tensor ``factor`` (tensor lr times the decay) is applied even where it is 0: testing its value
    would read it on the host, which breaks a compiled graph.
    """
    if isinstance(factor, Tensor) or factor != 0:
        torch._foreach_mul_(params, scalar_operand(per_tensor(1.0 - factor), params))
