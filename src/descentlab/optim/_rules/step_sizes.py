"""Scalar step-size formulas: NAdam's momentum schedule and coefficients, RAdam's rectification.

Each takes Python floats in an eager step and tensors in a compiled or differentiable one (the step
count as one entry per parameter), so the same formula serves both.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from descentlab.optim._rules.scaling import bias_correction, square_root


def scheduled_momentum(beta1: float, momentum_decay: float, step: int | Tensor) -> float | Tensor:
    """Dozat's momentum schedule :math:`\\mu_t = \\beta_1 (1 - \\tfrac12\\, 0.96^{t\\psi})` (torch, Keras)."""
    return beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))


def nesterov_step_sizes(lr: Any, mu: Any, mu_next: Any, product: Any) -> tuple[Any, Any]:
    """The factors of the gradient and of the momentum in NAdam's step (``product``: :math:`\\Pi_t`).

    :math:`\\eta(1-\\mu_t)/(1-\\Pi_t)` and :math:`\\eta\\mu_{t+1}/(1-\\Pi_t\\mu_{t+1})`, for floats or
    for tensors (a compiled step: one entry per parameter).
    """
    return lr * (1.0 - mu) / (1.0 - product), lr * mu_next / (1.0 - product * mu_next)


def sma_length(beta2: float, step: int | Tensor) -> tuple[float, float | Tensor]:
    """``(rho_inf, rho_t)``: the limit and current length of the approximated simple moving average.

    :math:`\\rho_\\infty = 2/(1-\\beta_2) - 1`, :math:`\\rho_t = \\rho_\\infty - 2t\\beta_2^t/(1-\\beta_2^t)`
    (Liu et al. 2020, Algorithm 2).
    """
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    return rho_inf, rho_inf - 2.0 * step * beta2**step / bias_correction(beta2, step)


def rectification(rho_inf: float, rho_t: float | Tensor) -> float | Tensor:
    """Variance rectification :math:`r_t = \\sqrt{(\\rho_t-4)(\\rho_t-2)\\rho_\\infty /
    ((\\rho_\\infty-4)(\\rho_\\infty-2)\\rho_t)}` (Liu et al. 2020, eq. 8; needs :math:`\\rho_t > 4`)."""
    return square_root((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
