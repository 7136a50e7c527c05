"""AdaMax (torch.optim.Adamax compatible), with the paper's and Keras's eps conventions as variants."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from descentlab.optim._engine import Direction, RuleOptimizer, make_step_counter, zeros_like_all
from descentlab.optim._rules import add_decayed_weights, bias_correction, ema_, plus_eps
from descentlab.optim._rules.adaptive import decayed_max_of_abs_
from descentlab.optim.adam import Adam


class Adamax(RuleOptimizer):
    r"""AdaMax: Adam with the second moment replaced by an exponentially weighted infinity norm.

    .. math::

        g_t &\leftarrow \nabla_\theta L(\theta_{t-1}) + \lambda\theta_{t-1} \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        u_t &\leftarrow \max(\beta_2 u_{t-1},\ |g_t| + \epsilon) \\
        \theta_t &\leftarrow \theta_{t-1} - \frac{\eta}{1 - \beta_1^t}\, \frac{m_t}{u_t}

    State: ``step``, ``exp_avg`` (:math:`m`) and ``exp_inf`` (:math:`u`), as in torch.

    Variants (they differ only in where :math:`\epsilon` goes):
        - ``"torch"`` (default): torch.optim.Adamax exactly, as above (eps inside the max).
        - ``"paper"``: Kingma & Ba 2015, Algorithm 2 / sec. 7.1: :math:`u_t = \max(\beta_2 u_{t-1}, |g_t|)`
          with no eps at all (``eps`` is unused). A coordinate whose gradients have all been exactly 0
          has :math:`m_t = u_t = 0` and its update is 0/0 = NaN, as the formula says.
        - ``"keras"``: :math:`u_t = \max(\beta_2 u_{t-1}, |g_t|)` and the step divides by
          :math:`u_t + \epsilon`, as Keras's ``Adamax`` does (Keras's default eps is 1e-7; ours stays 1e-8).

    Differences from the paper: coupled ``weight_decay`` and eps (torch's additions). Differences from
    torch.optim.Adamax: ``capturable=True`` is accepted but the step is not CUDA-graph capturable (it reads
    the step count on the host).

    Search space: Adam's ranges; with eps = 1 >> max|g| it contains Momentum's where |g| << 1.

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, arXiv:1412.6980, sec. 7.1,
        Algorithm 2.
    """

    reference = "Kingma & Ba 2015 (arXiv:1412.6980, sec. 7.1)"
    variants = ("torch", "paper", "keras")
    search_space = Adam.search_space

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        variant: str = "torch",
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            capturable=capturable,
            variant=variant,
        )
        super().__init__(params, defaults)

    def init_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Any]:
        return {"step": make_step_counter(), **zeros_like_all(param, ["exp_avg", "exp_inf"])}

    def direction(self, group, params, grads, state, step) -> Direction:
        beta1, beta2 = (float(beta) for beta in group["betas"])
        eps, variant = float(group["eps"]), group["variant"]
        grads = add_decayed_weights(grads, params, float(group["weight_decay"]))
        ema_(state["exp_avg"], grads, beta1)
        decayed_max_of_abs_(state["exp_inf"], grads, beta2, eps if variant == "torch" else 0.0)
        denominator = state["exp_inf"]
        if variant == "keras":
            denominator = plus_eps(denominator, eps)
        return Direction(state["exp_avg"], denominator, 1.0 / bias_correction(beta1, step))
