"""Sign-based directions: keep only the sign of an interpolated momentum (Lion)."""

from __future__ import annotations

import torch
from torch import Tensor


def sign_of_interpolation(averages: list[Tensor], values: list[Tensor], weight: float) -> list[Tensor]:
    """``sign(a + weight * (x - a))`` as a new list, i.e. ``sign((1 - weight) a + weight x)``.

    Lion's update direction (Chen et al. 2023, Algorithm 2: ``c = beta1 m + (1 - beta1) g``) with
    ``weight = 1 - beta1``; one lerp plus one in-place sign, no further temporaries.
    """
    interpolated = torch._foreach_lerp(averages, values, weight)
    torch._foreach_sign_(interpolated)
    return interpolated


__all__ = ["sign_of_interpolation"]
