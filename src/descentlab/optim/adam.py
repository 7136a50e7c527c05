"""Adam and AdamW (torch.optim.Adam / AdamW compatible), with the published variants."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.optim.adam import adam as torch_adam

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
    running_max_,
    square_root,
)
from descentlab.optim.search_space import Float


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
          keeps the max of the raw :math:`v_t` and bias-corrects it: :math:`\hat v_t = v^{max}_t /
          (1 - \beta_2^t)`).
        - ``"efficient-eps"``: the "more efficient" order of Kingma & Ba (end of sec. 2), eps added to
          :math:`\sqrt{v_t}` rather than :math:`\sqrt{\hat v_t}`:
          :math:`\alpha_t = \eta\sqrt{1-\beta_2^t}/(1-\beta_1^t)`,
          :math:`\theta_t = \theta_{t-1} - \alpha_t m_t/(\sqrt{v_t} + \hat\epsilon)`. It equals the
          torch form with :math:`\epsilon = \hat\epsilon/\sqrt{1-\beta_2^t}`, i.e. a larger effective
          eps early on. Combines with ``amsgrad=True`` (then :math:`v^{max}_t` replaces :math:`v_t`).
        - ``"amsgrad-paper"``: Reddi et al. 2018, Algorithm 2 as written: no bias correction at all,
          :math:`\hat v_t = \max(\hat v_{t-1}, v_t)`,
          :math:`\theta_t = \theta_{t-1} - \eta\, m_t/(\sqrt{\hat v_t} + \epsilon)`. Requires
          ``amsgrad=True`` (a ``ValueError`` otherwise, so the state key ``max_exp_avg_sq`` exists as in
          torch). Departures from the paper: :math:`\beta_1` is constant (the paper allows a decaying
          :math:`\beta_{1t}`; drive ``betas`` with a scheduler for that), :math:`\alpha_t` is the group's
          ``lr`` (the paper's theory uses :math:`\alpha/\sqrt t`; use a scheduler), there is no
          projection onto a feasible set, and ``eps`` is added to :math:`\sqrt{\hat v_t}` (the paper has
          none; ``eps`` must be > 0 here, since 0/0 would give NaN: a tiny one, e.g. ``1e-30``, is the
          paper up to rounding). Since :math:`m_1 = (1-\beta_1) g_1`, early steps are
          much shorter than torch's AMSGrad at the same lr.

    Differences from torch.optim.Adam: none in ``"torch"``: ``fused=True`` there runs torch's fused kernel (on
    a device it supports; elsewhere, and for the other variants, our multi-tensor path). ``capturable=True``
    is accepted but the step is not CUDA-graph capturable (it reads the step count on the host); tensor ``lr``
    / ``betas`` also work with ``foreach=True`` and mixed float/tensor ``betas`` are accepted (torch refuses
    both). Differences from Kingma & Ba: the default is their Algorithm 1 (eps outside :math:`\sqrt{\hat
    v_t}`); ``weight_decay`` (L2 added to the gradient) and ``decoupled_weight_decay`` are not in the paper.

    Search space: lr, betas, eps up to 1; it contains Momentum's where |g| << 1 (eps = 1: a step is lr m_hat).

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
        https://arxiv.org/abs/1412.6980.
        Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR 2018,
        https://openreview.net/forum?id=ryQu7f-RZ.
    """

    reference = "Kingma & Ba 2015 (arXiv:1412.6980); AMSGrad: Reddi et al. 2018"
    variants = ("torch", "efficient-eps", "amsgrad-paper")
    search_space = (
        Float("lr", 1e-5, 10.0, "log"),
        Float("betas[0]", 0.0, 0.999, "log1m"),
        Float("betas[1]", 0.9, 0.9999, "log1m"),
        Float("eps", 1e-10, 1.0, "log"),
    )
    fused_devices = ("cpu", "cuda", "xpu", "mps")  # where torch.optim.Adam has its fused kernel

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

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        if group["variant"] == "amsgrad-paper" and not group["amsgrad"]:
            raise ValueError("variant='amsgrad-paper' is AMSGrad: pass amsgrad=True (got amsgrad=False)")

    def init_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Any]:
        names = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])
        return {"step": make_step_counter(), **zeros_like_all(param, names)}

    def torch_step(self, group, params, grads, state, steps, **implementation) -> None:
        """torch.optim.Adam's (AdamW's) own fused kernel."""
        beta1, beta2 = group["betas"]
        torch_adam(
            params,
            grads,
            state["exp_avg"],
            state["exp_avg_sq"],
            state.get("max_exp_avg_sq", []),
            steps,
            decoupled_weight_decay=group["decoupled_weight_decay"],
            amsgrad=group["amsgrad"],
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=float(group["weight_decay"]),
            eps=float(group["eps"]),
            maximize=group["maximize"],
            **implementation,
        )

    def direction(self, group, params, grads, state, step) -> Direction:
        beta1, beta2 = hyperparameter(group, "betas")
        weight_decay = float(group["weight_decay"])
        variant = group["variant"]
        if group["decoupled_weight_decay"]:
            decay_weights_(params, self._decay_factor(group) * weight_decay)
        else:
            grads = add_decayed_weights(grads, params, weight_decay)
        ema_(state["exp_avg"], grads, beta1)
        ema_of_squares_(state["exp_avg_sq"], grads, beta2)
        second_moment = state["exp_avg_sq"]
        if group["amsgrad"]:
            running_max_(state["max_exp_avg_sq"], second_moment)
            second_moment = state["max_exp_avg_sq"]
        if variant == "amsgrad-paper":
            return Direction(state["exp_avg"], root_plus_eps(second_moment, group["eps"]))
        if variant == "efficient-eps":
            step_size = square_root(bias_correction(beta2, step)) / bias_correction(beta1, step)
            return Direction(state["exp_avg"], root_plus_eps(second_moment, group["eps"]), step_size)
        denominator = root_plus_eps(second_moment, group["eps"], bias_correction(beta2, step))
        return Direction(state["exp_avg"], denominator, 1.0 / bias_correction(beta1, step))

    def _decay_factor(self, group: dict[str, Any]) -> float:
        """The multiplier of ``weight_decay`` in decoupled decay: torch's ``lr`` (AdamW overrides)."""
        return hyperparameter(group, "lr")


class AdamW(Adam):
    r"""Adam with decoupled weight decay: :class:`Adam` with ``decoupled_weight_decay=True``.

    .. math::

        \theta_{t-1} &\leftarrow (1 - \eta\lambda)\,\theta_{t-1} \\
        \theta_t &\leftarrow \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    with :math:`\hat m_t, \hat v_t` as in :class:`Adam`. Default ``weight_decay=1e-2`` as in torch.

    Variants:
        - ``"torch"`` (default): torch.optim.AdamW exactly: the decay is :math:`\eta\lambda\theta`, the
          current lr times ``weight_decay``.
        - ``"paper"``: Loshchilov & Hutter 2019, Algorithm 2, line 12:
          :math:`\theta_t = \theta_{t-1} - \eta_t(\alpha\hat m_t/(\sqrt{\hat v_t}+\epsilon)
          + \lambda\theta_{t-1})`, where :math:`\eta_t` is the *schedule multiplier*, not the lr. We
          read it as :math:`\eta_t = \text{lr} / \text{initial\_lr}` of the param group
          (``initial_lr`` is written by every torch ``LRScheduler``, so schedulers drive it) and
          :math:`\alpha\eta_t = \text{lr}`. Without a scheduler (no ``initial_lr`` in the group), or when
          ``initial_lr`` is 0, :math:`\eta_t = 1`: a constant schedule decays
          :math:`\theta \leftarrow \theta - \lambda\theta` per step, so useful ``weight_decay``
          values are about ``lr`` times smaller than torch's (the paper's :math:`\lambda` is also often
          normalised by the number of batches; we do not normalise). Changing ``lr`` by hand without a
          scheduler therefore does not change the decay. Under ``OneCycleLR``, ``initial_lr`` is
          ``max_lr / div_factor``, so :math:`\eta_t` peaks at ``div_factor``. ``weight_decay`` must be in
          [0, 1] (the decay fraction per step at :math:`\eta_t = 1`).

    Differences from torch.optim.AdamW: none in ``"torch"``. ``amsgrad=True`` follows torch's AMSGrad
    form in both variants.

    Search space: Adam's plus weight_decay (log); it contains Adam's only down to its smallest decay.

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019,
        https://arxiv.org/abs/1711.05101.
    """

    reference = "Loshchilov & Hutter 2019 (arXiv:1711.05101)"
    variants = ("torch", "paper")
    search_space = (*Adam.search_space, Float("weight_decay", 1e-5, 0.1, "log"))

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

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        if group["variant"] == "paper" and not 0 <= as_float(group["weight_decay"]) <= 1:
            raise ValueError(
                "AdamW(variant='paper') decays theta <- theta - eta_t * weight_decay * theta, so "
                f"weight_decay must be in [0, 1], got {group['weight_decay']}"
            )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # An Adam state_dict carries decoupled_weight_decay=False; AdamW is decoupled by definition
        # (torch.optim.AdamW forces it back to True the same way).
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True

    def _decay_factor(self, group: dict[str, Any]) -> float:
        if group["variant"] != "paper":
            return hyperparameter(group, "lr")
        initial_lr = as_float(group.get("initial_lr", 0.0))
        # eta_t of Loshchilov & Hutter: the schedule multiplier, recovered as lr / initial_lr.
        return as_float(group["lr"]) / initial_lr if initial_lr > 0 else 1.0
