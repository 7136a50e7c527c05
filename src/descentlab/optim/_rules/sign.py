"""Sign-based directions: keep only the sign of an interpolated momentum (Lion)."""

from __future__ import annotations

import torch
from torch import Tensor


def sign_of_interpolation(averages: list[Tensor], values: list[Tensor], weight: float) -> list[Tensor]:
    """``sign(a + weight * (x - a))`` as a new list, i.e. ``sign((1 - weight) a + weight x)``.

    Lion's update direction (Chen et al. 2023, Algorithm 2: ``c = beta1 m + (1 - beta1) g``) with
    ``weight = 1 - beta1``. A non-finite ``c`` gives a NaN entry (``sign(c) + 0 * c``), since torch's
    ``sign(NaN)`` is 0 and would silently freeze the coordinate; finite entries are exactly ``sign(c)``.
    """
    interpolated = torch._foreach_lerp(averages, values, weight)
    signs = torch._foreach_sign(interpolated)
    torch._foreach_add_(signs, interpolated, alpha=0.0)
    return signs


__all__ = ["sign_of_interpolation"]
