"""Denominators that scale a direction by a root-mean-square estimate, with their eps conventions."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def bias_correction(beta: float | Tensor, step: int) -> float | Tensor:
    """``1 - beta**step``: the factor that un-biases an EMA started at zero (Kingma & Ba 2015, sec. 3).

    A tensor ``beta`` (a differentiable step) gives a tensor, so autograd sees the dependence.
    """
    return 1.0 - beta**step


def square_root(value: float | Tensor) -> float | Tensor:
    """``sqrt(value)`` of a float (correctly rounded, ``math.sqrt``) or of a scalar tensor (autograd)."""
    return value.sqrt() if isinstance(value, Tensor) else math.sqrt(value)


def root_of(values: list[Tensor]) -> list[Tensor]:
    """Elementwise ``sqrt(x)`` as a new list."""
    return torch._foreach_sqrt(values)


def root_plus_eps(squares: list[Tensor], eps: float, correction: float | Tensor = 1.0) -> list[Tensor]:
    """``sqrt(v / correction) + eps`` as a new list: eps outside the root (Adam, torch's RMSprop).

    Computed as ``sqrt(v) / sqrt(correction) + eps``, the order torch.optim uses.
    """
    denominator = torch._foreach_sqrt(squares)
    if torch.is_grad_enabled():
        # A differentiable step: the root's backward reads the root, so it must not change in place.
        if isinstance(correction, Tensor) or correction != 1.0:
            denominator = torch._foreach_div(denominator, square_root(correction))
        return torch._foreach_add(denominator, eps)
    if correction != 1.0:
        torch._foreach_div_(denominator, math.sqrt(correction))
    torch._foreach_add_(denominator, eps)
    return denominator


def root_with_eps_inside(squares: list[Tensor], eps: float) -> list[Tensor]:
    """``sqrt(v + eps)`` as a new list: eps inside the root (Hinton's RMSprop notes, AdaDelta)."""
    if torch.is_grad_enabled():
        # A differentiable step: the multi-tensor add would save ``squares``, which callers then update
        # in place (Adadelta's accumulator), and callers may divide the root in place; neither is saved here.
        return [torch.sqrt(square + eps) for square in squares]
    denominator = torch._foreach_add(squares, eps)
    torch._foreach_sqrt_(denominator)
    return denominator
