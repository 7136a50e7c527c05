"""Adam and AdamW (torch.optim.Adam / AdamW compatible), with the published variants."""

from __future__ import annotations

from torch.optim.adam import adam as torch_adam

from descentlab.optim._engine import RuleOptimizer, as_float
from descentlab.optim._transform import arguments
from descentlab.optim._transforms import scale_by_adam
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
    # Scale by Adam's moments, bias-corrected; the engine places the decay (coupled unless the flag).
    chain = (scale_by_adam,)
    weight_decay_placement = "flag"
    signature = arguments(
        "lr betas eps weight_decay amsgrad",
        "* foreach maximize capturable differentiable fused decoupled_weight_decay variant",
        lr=1e-3,
    )

    def check_group(self, group) -> None:
        super().check_group(group)
        if group["variant"] == "amsgrad-paper" and not group["amsgrad"]:
            raise ValueError("variant='amsgrad-paper' is AMSGrad: pass amsgrad=True (got amsgrad=False)")

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

    schedule_multiplier_variants = ("paper",)  # the decay is eta_t * weight_decay (see above)
    signature = arguments(
        "lr betas eps weight_decay amsgrad * maximize foreach capturable differentiable fused variant",
        lr=1e-3,
        weight_decay=1e-2,
        fixed={"decoupled_weight_decay": True},
    )

    def check_group(self, group) -> None:
        super().check_group(group)
        if group["variant"] == "paper" and not 0 <= as_float(group["weight_decay"]) <= 1:
            raise ValueError(
                "AdamW(variant='paper') decays theta <- theta - eta_t * weight_decay * theta, so "
                f"weight_decay must be in [0, 1], got {group['weight_decay']}"
            )
