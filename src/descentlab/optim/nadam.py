"""NAdam: Adam with Nesterov momentum (torch.optim.NAdam compatible), and Dozat's published form."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from descentlab.optim._engine import (
    Direction,
    RuleOptimizer,
    apply_update,
    as_float,
    hyperparameter,
    make_step_counter,
    scalar_dtype,
    zeros_like_all,
)
from descentlab.optim._rules import (
    add_decayed_weights,
    bias_correction,
    decay_weights_,
    ema_,
    ema_of_squares_,
    per_tensor,
    root_plus_eps,
)
from descentlab.optim._validation import NON_NEGATIVE, hyperparameter_checks
from descentlab.optim.adam import Adam


def scheduled_momentum(beta1: float, momentum_decay: float, step: int | Tensor) -> float | Tensor:
    """Dozat's momentum schedule :math:`\\mu_t = \\beta_1 (1 - \\tfrac12\\, 0.96^{t\\psi})` (torch, Keras)."""
    return beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))


def nesterov_step_sizes(lr: Any, mu: Any, mu_next: Any, product: Any) -> tuple[Any, Any]:
    """The factors of the gradient and of the momentum in NAdam's step (``product``: :math:`\\Pi_t`).

    :math:`\\eta(1-\\mu_t)/(1-\\Pi_t)` and :math:`\\eta\\mu_{t+1}/(1-\\Pi_t\\mu_{t+1})`, for floats or
    for tensors (a compiled step: one entry per parameter).
    """
    return lr * (1.0 - mu) / (1.0 - product), lr * mu_next / (1.0 - product * mu_next)


class NAdam(RuleOptimizer):
    r"""NAdam: Adam whose first-moment step looks one momentum step ahead (Nesterov), with a warm-up
    schedule :math:`\mu_t` on the momentum.

    .. math::

        \mu_t &= \beta_1 \bigl(1 - \tfrac12\, 0.96^{t\psi}\bigr), \qquad
              \Pi_t = \textstyle\prod_{i=1}^{t} \mu_i \;(\text{state ``mu_product``}) \\
        g_t &\leftarrow \nabla_\theta L(\theta_{t-1}) \;(+\,\lambda\theta_{t-1}
              \text{ unless decoupled}) \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t
              \quad(\text{``"paper"``: } \mu_t m_{t-1} + (1 - \mu_t) g_t) \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \qquad
              \hat v_t = v_t / (1 - \beta_2^t) \\
        \theta_t &\leftarrow \theta_{t-1} - \eta \Bigl(\frac{1 - \mu_t}{1 - \Pi_t}\, g_t
              + \frac{\mu_{t+1}}{1 - \Pi_t\mu_{t+1}}\, m_t\Bigr) \Big/ \bigl(\sqrt{\hat v_t} + \epsilon\bigr)

    with momentum decay :math:`\psi` (``momentum_decay``). With ``decoupled_weight_decay=True`` the decay is
    :math:`\theta \leftarrow (1 - \eta\lambda)\theta` first (NAdamW). State: ``step``, ``mu_product`` (a
    scalar tensor starting at 1, float32 unless the default dtype is float64, as torch stores it),
    ``exp_avg``, ``exp_avg_sq``.

    Variants:
        - ``"torch"`` (default): torch.optim.NAdam exactly (the Keras form): the first moment averages
          with the *constant* :math:`\beta_1`; the schedule :math:`\mu_t` appears only in the two step
          coefficients and in the product :math:`\Pi_t`.
        - ``"paper"``: Dozat 2016, Algorithm 2, as published: the first moment averages with the
          *scheduled* :math:`\mu_t`, :math:`m_t = \mu_t m_{t-1} + (1-\mu_t) g_t`. Everything else
          (:math:`\hat g_t = g_t/(1-\Pi_t)`, :math:`\hat m_t = m_t/(1-\Pi_{t+1})`,
          :math:`\bar m_t = (1-\mu_t)\hat g_t + \mu_{t+1}\hat m_t`, eps outside the root) is the same as
          torch. Algorithm 2 takes :math:`\mu_t` and :math:`\alpha_t` as given sequences; we use torch's
          schedule (from Dozat's 2015 CS229 report, adopted by Keras: base 0.96, :math:`\psi = 0.004`)
          and the group's ``lr`` as :math:`\alpha_t`. State and state_dict are torch's, so a run can
          switch variants mid-way.

    Differences from torch.optim.NAdam: none in ``"torch"``; ``capturable=True`` is accepted but the step is
    not CUDA-graph capturable (it reads the step count on the host). Differences from the paper: besides the
    first-moment average above, weight decay (coupled or decoupled) is not in the paper.

    Search space: Adam's ranges; with eps = 1 it contains Nesterov's where |g| << 1, as Adam Momentum's.

    References:
        Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop,
        https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ.
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (decoupled decay).
    """

    reference = "Dozat 2016 (ICLR workshop, 'Incorporating Nesterov Momentum into Adam')"
    variants = ("torch", "paper")
    search_space = Adam.search_space

    hyperparameters = hyperparameter_checks(momentum_decay=NON_NEGATIVE)

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
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
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            variant=variant,
        )
        super().__init__(params, defaults)

    def init_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Any]:
        return {
            "step": make_step_counter(),
            "mu_product": torch.tensor(1.0, dtype=scalar_dtype()),
            **zeros_like_all(param, ["exp_avg", "exp_avg_sq"]),
        }

    def direction(self, group, params, grads, state, step) -> None:
        beta1, beta2 = (as_float(beta) for beta in group["betas"])
        lr, weight_decay = hyperparameter(group, "lr"), float(group["weight_decay"])
        if group["decoupled_weight_decay"]:
            decay_weights_(params, lr * weight_decay)
        else:
            grads = add_decayed_weights(grads, params, weight_decay)
        mu = scheduled_momentum(beta1, group["momentum_decay"], step)
        mu_next = scheduled_momentum(beta1, group["momentum_decay"], step + 1)
        products = state["mu_product"]
        # A compiled step's mu is float64; the eager step multiplies by it in the products' dtype.
        torch._foreach_mul_(products, per_tensor(mu.to(products[0].dtype) if isinstance(mu, Tensor) else mu))
        ema_(state["exp_avg"], grads, mu if group["variant"] == "paper" else beta1)
        ema_of_squares_(state["exp_avg_sq"], grads, beta2)
        denominator = root_plus_eps(state["exp_avg_sq"], group["eps"], bias_correction(beta2, step))
        # Two passes, as torch: the Nesterov step mixes the raw gradient and the momentum with different
        # coefficients, and mu_product is read per parameter (it is per-parameter state).
        if isinstance(lr, Tensor) and lr.requires_grad:  # differentiable w.r.t. lr: tensor coefficients
            for param, grad, average, root, product in zip(
                params, grads, state["exp_avg"], denominator, state["mu_product"]
            ):
                gradient_step, momentum_step = nesterov_step_sizes(lr, mu, mu_next, float(product.item()))
                param.sub_(grad / root * gradient_step + average / root * momentum_step)
            return None
        if torch.compiler.is_compiling():  # one product per parameter, kept on the graph
            stacked = torch.stack(products).to(torch.float64)
            gradient_steps, momentum_steps = nesterov_step_sizes(lr, mu, mu_next, stacked)
        else:
            sizes = [nesterov_step_sizes(lr, mu, mu_next, float(p.item())) for p in products]
            gradient_steps, momentum_steps = map(list, zip(*sizes))
        apply_update(params, Direction(grads, denominator, gradient_steps), 1.0)
        apply_update(params, Direction(state["exp_avg"], denominator, momentum_steps), 1.0)
        return None
