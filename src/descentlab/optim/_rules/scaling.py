"""Denominators that scale a direction by a root-mean-square estimate, with their eps conventions."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def bias_correction(beta: float, step: int) -> float:
    """``1 - beta**step``: the factor that un-biases an EMA started at zero (Kingma & Ba 2015, sec. 3)."""
    return 1.0 - beta**step


def root_of(values: list[Tensor]) -> list[Tensor]:
    """Elementwise ``sqrt(x)`` as a new list."""
    return torch._foreach_sqrt(values)


def root_plus_eps(squares: list[Tensor], eps: float, correction: float = 1.0) -> list[Tensor]:
    """``sqrt(v / correction) + eps`` as a new list: eps outside the root (Adam, torch's RMSprop).

    Computed as ``sqrt(v) / sqrt(correction) + eps``, the order torch.optim uses.
    """
    denominator = torch._foreach_sqrt(squares)
    if correction != 1.0:
        torch._foreach_div_(denominator, math.sqrt(correction))
    torch._foreach_add_(denominator, eps)
    return denominator


def root_with_eps_inside(squares: list[Tensor], eps: float) -> list[Tensor]:
    """``sqrt(v + eps)`` as a new list: eps inside the root (Hinton's RMSprop notes, AdaDelta)."""
    denominator = torch._foreach_add(squares, eps)
    torch._foreach_sqrt_(denominator)
    return denominator
