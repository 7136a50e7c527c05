"""Rules of the per-coordinate adaptive family (RMSprop's centred variance, AdaMax's decayed max-norm)."""

from __future__ import annotations

import torch
from torch import Tensor

from descentlab.optim._rules.scalars import add_scalar_, scalar_operand
from descentlab.optim._rules.scaling import nonvanishing_eps


def centered_second_moment(square_avgs: list[Tensor], grad_avgs: list[Tensor]) -> list[Tensor]:
    """``max(E[g^2] - E[g]^2, 0)`` as a new list: centred RMSprop's variance (Graves 2013, eq. 40).

    The clamp departs from torch.optim.RMSprop: where the two averages agree (``alpha = 0``, or a
    constant gradient) rounding can make the difference slightly negative, and its square root NaN.
    """
    variances = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, value=-1)
    torch._foreach_clamp_min_(variances, 0.0)
    return variances


def decayed_max_of_abs_(maxima: list[Tensor], values: list[Tensor], decay: float, eps: float = 0.0) -> None:
    """``u <- max(decay * u, |x| + eps)`` in place: AdaMax's exponentially weighted infinity norm.

    ``eps = 0`` is Kingma & Ba 2015, sec. 7.1; torch.optim.Adamax adds its ``eps`` to ``|x|`` here
    (kept from vanishing in low precision by :func:`~descentlab.optim._rules.scaling.nonvanishing_eps`).
    """
    torch._foreach_mul_(maxima, scalar_operand(decay, maxima))
    magnitudes = torch._foreach_abs(values)
    if eps != 0:
        add_scalar_(magnitudes, nonvanishing_eps(eps, values))
    torch._foreach_maximum_(maxima, magnitudes)
