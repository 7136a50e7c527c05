"""RAdam: Adam with a rectified adaptive step (torch.optim.RAdam compatible), paper and authors' code."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from descentlab.optim._engine import (
    Direction,
    RuleOptimizer,
    as_float,
    hyperparameter,
    make_step_counter,
    zeros_like_all,
)
from descentlab.optim._rules import (
    add_decayed_weights,
    bias_correction,
    decay_weights_,
    ema_,
    ema_of_squares_,
    root_plus_eps,
    square_root,
)
from descentlab.optim.adam import Adam


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


class RAdam(RuleOptimizer):
    r"""RAdam: Adam whose adaptive step is switched on, and scaled down, only once the variance of
    the adaptive learning rate is tractable; before that it takes bias-corrected momentum steps.

    .. math::

        g_t &\leftarrow \nabla_\theta L(\theta_{t-1}) \;(+\,\lambda\theta_{t-1}
              \text{ unless decoupled}) \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad \hat m_t = m_t/(1-\beta_1^t) \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        \rho_\infty &= 2/(1-\beta_2) - 1, \qquad
              \rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t) \\
        \theta_t &\leftarrow \begin{cases}
              \theta_{t-1} - \eta\, r_t\, \hat m_t \sqrt{1-\beta_2^t}/(\sqrt{v_t} + \epsilon)
                  & \rho_t > 5 \\
              \theta_{t-1} - \eta\, \hat m_t & \text{otherwise} \end{cases} \\
        r_t &= \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}

    With ``decoupled_weight_decay=True`` the decay is :math:`\theta \leftarrow (1-\eta\lambda)\theta`
    first (RAdamW). State: ``step``, ``exp_avg``, ``exp_avg_sq``, as in torch. Note that eps is added to
    :math:`\sqrt{v_t}`, not to :math:`\sqrt{v_t/(1-\beta_2^t)}` as in :class:`Adam` (torch, the authors'
    code and all variants here agree on this).

    Variants (they differ only while :math:`\rho_t` is small, i.e. the first steps: with
    :math:`\beta_2 = 0.999` the adaptive step starts at t = 6 for "torch", t = 5 for "paper"):
        - ``"torch"`` (default): torch.optim.RAdam exactly: rectified step when :math:`\rho_t > 5`,
          otherwise the bias-corrected momentum step :math:`\eta\hat m_t`.
        - ``"paper"``: Liu et al. 2020, Algorithm 2 as written: threshold :math:`\rho_t > 4` (where
          :math:`r_t` first becomes defined), otherwise :math:`\theta_t = \theta_{t-1} - \alpha_t\hat m_t`.
          The paper has no eps (``eps`` must be > 0 here; a tiny one such as ``1e-30`` is the paper
          up to rounding) and no weight decay; ours follow torch.
        - ``"authors-code"``: the authors' public implementation (LiyuanLucasLiu/RAdam, ``radam/radam.py``,
          class ``RAdam`` with its default ``degenerated_to_sgd=False``): rectified step when
          :math:`\rho_t \ge 5`; otherwise **no update at all** (moments are still accumulated, and no
          weight decay is applied either). Its weight decay is always decoupled
          (:math:`\theta \leftarrow \theta - \eta\lambda\theta`, applied only on steps that update), so a
          non-zero ``weight_decay`` requires ``decoupled_weight_decay=True`` here (``ValueError``
          otherwise).
        - ``"authors-code-sgd"``: the same code with ``degenerated_to_sgd=True``: below the threshold it
          takes the momentum step :math:`\eta\hat m_t` (with the decoupled decay), like torch; it differs
          from ``"torch"`` only at :math:`\rho_t = 5` exactly (never for real :math:`\beta_2`), so in
          practice it equals ``"torch"`` with decoupled decay. (An early top-level ``radam.py`` of the
          same repository, without the option, is this form.) The code's per-step cache of
          :math:`\rho_t` and the step size (shared by param groups with equal default betas) is not
          reproduced; it only matters if a scheduler gives such groups different betas.

    Differences from torch.optim.RAdam: none in ``"torch"``; ``capturable=True`` is accepted but the step is
    not CUDA-graph capturable (it reads the step count on the host).

    Search space: Adam's ranges, so the two compare on equal terms.

    References:
        Liu, Jiang, He, Chen, Liu, Gao & Han, "On the Variance of the Adaptive Learning Rate and Beyond",
        ICLR 2020, https://arxiv.org/abs/1908.03265; code: https://github.com/LiyuanLucasLiu/RAdam.
    """

    reference = "Liu et al. 2020 (arXiv:1908.03265)"
    variants = ("torch", "paper", "authors-code", "authors-code-sgd")
    search_space = Adam.search_space

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        variant: str = "torch",
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            variant=variant,
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        variant, weight_decay = group["variant"], group["weight_decay"]
        if (
            variant in ("authors-code", "authors-code-sgd")
            and weight_decay != 0
            and not group["decoupled_weight_decay"]
        ):
            raise ValueError(
                f"variant={variant!r} decays weights decoupled (as the authors' code does); pass "
                f"decoupled_weight_decay=True or weight_decay=0, got weight_decay={weight_decay}"
            )

    def init_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Any]:
        return {"step": make_step_counter(), **zeros_like_all(param, ["exp_avg", "exp_avg_sq"])}

    def direction(self, group, params, grads, state, step) -> Direction | None:
        beta1, beta2 = (as_float(beta) for beta in group["betas"])
        weight_decay, variant = float(group["weight_decay"]), group["variant"]
        rho_inf, rho_t = sma_length(beta2, step)
        if variant == "paper":
            rectified = rho_t > 4.0
        elif variant in ("authors-code", "authors-code-sgd"):
            rectified = rho_t >= 5.0
        else:
            rectified = rho_t > 5.0
        # The authors' code skips the steps it does not rectify: no decay, no move.
        updates = rectified if variant == "authors-code" else True
        if group["decoupled_weight_decay"]:
            decay_weights_(params, hyperparameter(group, "lr") * weight_decay * updates)
        else:
            grads = add_decayed_weights(grads, params, weight_decay)
        ema_(state["exp_avg"], grads, beta1)
        ema_of_squares_(state["exp_avg_sq"], grads, beta2)
        if isinstance(step, Tensor):
            return _selected_direction(state, group["eps"], beta1, beta2, step, rectified, variant)
        if not updates:
            return None
        if not rectified:
            return Direction(state["exp_avg"], None, 1.0 / bias_correction(beta1, step))
        step_size = rectification(rho_inf, rho_t) * square_root(bias_correction(beta2, step))
        denominator = root_plus_eps(state["exp_avg_sq"], group["eps"])
        return Direction(state["exp_avg"], denominator, step_size / bias_correction(beta1, step))


def _selected_direction(
    state: dict[str, list[Tensor]],
    eps: float,
    beta1: float,
    beta2: float,
    step: Tensor,
    rectified: Tensor,
    variant: str,
) -> Direction:
    """RAdam's direction of a compiled step: the rectified and the momentum step, chosen per parameter.

    ``step`` holds one count per parameter, so whether a parameter's step is rectified is a tensor;
    branching on it would read it on the host. Both steps are computed and ``torch.where`` picks one
    (as torch.optim's capturable RAdam does): the denominator is 1 where the step is not rectified.
    """
    rho_inf, rho_t = sma_length(beta2, step)
    unrectified_scale = 0.0 if variant == "authors-code" else 1.0
    rectified_scale = rectification(rho_inf, rho_t) * square_root(bias_correction(beta2, step))
    scale = torch.where(rectified, rectified_scale, unrectified_scale) / bias_correction(beta1, step)
    roots = root_plus_eps(state["exp_avg_sq"], eps)
    denominator = [torch.where(chosen, root, 1.0) for chosen, root in zip(rectified.unbind(), roots)]
    return Direction(state["exp_avg"], denominator, scale)
