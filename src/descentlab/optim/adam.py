"""Adam and AdamW (torch.optim.Adam / AdamW compatible), with the published variants."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from descentlab.optim._engine import Direction, RuleOptimizer, make_step_counter, zeros_like_all
from descentlab.optim._rules import (
    add_decayed_weights,
    bias_correction,
    decay_weights_,
    ema_,
    ema_of_squares_,
    root_plus_eps,
    running_max_,
)
from descentlab.optim._validation import check_betas, check_non_negative


class Adam(RuleOptimizer):
    r"""Adam: momentum on the gradient, scaled by a running RMS, both bias-corrected.

    .. math::

        g_t &\leftarrow \nabla_\theta L(\theta_{t-1}) \; (+\, \lambda\theta_{t-1}
              \text{ unless decoupled}) \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t), \quad \hat v_t = v_t / (1 - \beta_2^t) \\
        \theta_t &\leftarrow \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    With ``amsgrad=True``, :math:`\hat v_t` uses :math:`v^{max}_t = \max(v^{max}_{t-1}, v_t)` (state
    ``max_exp_avg_sq``). With ``decoupled_weight_decay=True`` the decay is
    :math:`\theta \leftarrow (1 - \eta\lambda)\theta` before the update (AdamW). State: ``step``,
    ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``), as in torch.

    Variants:
        - ``"torch"`` (default): torch.optim.Adam exactly (eps added to :math:`\sqrt{\hat v_t}`; AMSGrad
          keeps the max of the raw :math:`v_t` and bias-corrects it).

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, arXiv:1412.6980.
        Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018.
    """

    reference = "Kingma & Ba 2015 (arXiv:1412.6980); AMSGrad: Reddi et al. 2018"
    variants = ("torch",)

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        variant: str = "torch",
    ) -> None:
        check_betas(betas)
        check_non_negative("eps", eps)
        check_non_negative("weight_decay", weight_decay)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
            variant=variant,
        )
        super().__init__(params, defaults)

    def init_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Any]:
        names = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])
        return {"step": make_step_counter(), **zeros_like_all(param, names)}

    def direction(self, group, params, grads, state, step) -> Direction:
        beta1, beta2 = (float(beta) for beta in group["betas"])
        weight_decay = float(group["weight_decay"])
        if group["decoupled_weight_decay"]:
            decay_weights_(params, float(group["lr"]) * weight_decay)
        else:
            grads = add_decayed_weights(grads, params, weight_decay)
        ema_(state["exp_avg"], grads, beta1)
        ema_of_squares_(state["exp_avg_sq"], grads, beta2)
        second_moment = state["exp_avg_sq"]
        if group["amsgrad"]:
            running_max_(state["max_exp_avg_sq"], second_moment)
            second_moment = state["max_exp_avg_sq"]
        denominator = root_plus_eps(second_moment, group["eps"], bias_correction(beta2, step))
        return Direction(state["exp_avg"], denominator, 1.0 / bias_correction(beta1, step))


class AdamW(Adam):
    r"""Adam with decoupled weight decay: :class:`Adam` with ``decoupled_weight_decay=True``.

    .. math::

        \theta_{t-1} &\leftarrow (1 - \eta\lambda)\,\theta_{t-1} \\
        \theta_t &\leftarrow \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    with :math:`\hat m_t, \hat v_t` as in :class:`Adam`. Default ``weight_decay=1e-2`` as in torch.

    Variants:
        - ``"torch"`` (default): torch.optim.AdamW exactly (decay multiplied by the current lr).

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019, arXiv:1711.05101.
    """

    reference = "Loshchilov & Hutter 2019 (arXiv:1711.05101)"
    variants = ("torch",)

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        variant: str = "torch",
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
            variant=variant,
        )
