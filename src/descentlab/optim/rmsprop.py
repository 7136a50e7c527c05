"""RMSprop (torch.optim.RMSprop compatible), with eps inside the root and Graves's 2013 form as variants."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from descentlab.optim._engine import Direction, RuleOptimizer, as_float, make_step_counter, zeros_like_all
from descentlab.optim._rules import (
    add_decayed_weights,
    ema_,
    ema_of_squares_,
    root_plus_eps,
    root_with_eps_inside,
)
from descentlab.optim._rules.adaptive import centered_second_moment
from descentlab.optim._validation import CLOSED_UNIT_INTERVAL, hyperparameter_checks
from descentlab.optim.search_space import Categorical, Float


class RMSprop(RuleOptimizer):
    r"""RMSprop: the gradient divided by a running root-mean-square of recent gradients.

    .. math::

        g_t &\leftarrow \nabla_\theta L(\theta_{t-1}) + \lambda\theta_{t-1} \\
        v_t &\leftarrow \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        \bar g_t &\leftarrow \alpha \bar g_{t-1} + (1 - \alpha) g_t \quad\text{(centered only)} \\
        \tilde v_t &= v_t - \bar g_t^2 \text{ if centered, else } v_t \\
        d_t &= \sqrt{\tilde v_t} + \epsilon \\
        b_t &\leftarrow \mu b_{t-1} + g_t / d_t, \qquad \theta_t \leftarrow \theta_{t-1} - \eta\, b_t
            \quad(\mu > 0;\ \text{else } \theta_t \leftarrow \theta_{t-1} - \eta\, g_t / d_t)

    with smoothing ``alpha`` :math:`\alpha`, ``momentum`` :math:`\mu`, ``weight_decay`` :math:`\lambda`.
    State: ``step``, ``square_avg``, ``momentum_buffer`` (when ``momentum > 0`` at state creation) and
    ``grad_avg`` (when ``centered``), as in torch.

    Variants:
        - ``"torch"`` (default): torch.optim.RMSprop exactly (eps outside the root).
        - ``"eps_inside"``: :math:`d_t = \sqrt{\tilde v_t + \epsilon}`, the denominator of TensorFlow's
          ``ApplyRMSProp`` / ``ApplyCenteredRMSProp``. TensorFlow also folds ``lr`` into its momentum
          buffer; this variant keeps torch's buffer (the two agree while ``lr`` is constant).
        - ``"graves"``: Graves 2013, eqs. (38)-(41), exactly as published, with
          :math:`\aleph=\alpha`, :math:`\beth=\mu`, :math:`\gimel=\eta`, :math:`\daleth=\epsilon`:

          .. math::

              n_t &= \aleph n_{t-1} + (1-\aleph) g_t^2 \\
              \bar g_t &= \aleph \bar g_{t-1} + (1-\aleph) g_t \\
              \Delta_t &= \beth \Delta_{t-1} - \gimel\, g_t / \sqrt{n_t - \bar g_t^2 + \daleth},
              \quad \theta_t = \theta_{t-1} + \Delta_t

          i.e. eps inside the root and the learning rate inside the momentum buffer (state
          ``momentum_buffer`` holds :math:`-\Delta_t`, so its sign matches torch's). It is the centred
          form, so it requires ``centered=True``. The paper's values are ``alpha=0.95, momentum=0.9,
          lr=1e-4, eps=1e-4``; the defaults stay torch's.

    Relation to the lecture: Tieleman & Hinton's RMSprop (lecture 6e) divides by
    :math:`\sqrt{v_t}` with :math:`\alpha = 0.9` and no eps at all: ``RMSprop(..., alpha=0.9, eps=1e-30)``
    reproduces it up to rounding in either eps convention (``eps`` must be > 0: with 0 a coordinate whose
    gradients were all 0 would divide 0 by 0).

    Differences from torch.optim.RMSprop: ``alpha`` must lie in [0, 1] (torch accepts any ``alpha >= 0``);
    ``capturable=True`` is accepted but the step is not CUDA-graph capturable (it reads the step count on the
    host); raising ``momentum`` above 0 after the state was created without a buffer raises a clear error
    (torch raises ``KeyError``); with ``centered=True`` the variance
    :math:`v_t - \bar g_t^2` is clamped at 0, where rounding would make it negative and torch's step NaN.

    Search space: lr, alpha, eps, momentum only when used, centered; eps = 1 contains SGD's (|g| << 1).

    References:
        Tieleman & Hinton, "Lecture 6.5 - rmsprop: Divide the gradient by a running average of its recent
        magnitude", COURSERA: Neural Networks for Machine Learning, 2012,
        https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf.
        Graves, "Generating Sequences With Recurrent Neural Networks", 2013, arXiv:1308.0850, sec. 4.
    """

    reference = "Tieleman & Hinton 2012 (lecture 6e); centered: Graves 2013 (arXiv:1308.0850)"
    variants = ("torch", "eps_inside", "graves")
    search_space = (
        Float("lr", 1e-5, 10.0, "log"),
        Float("alpha", 0.5, 0.9999, "log1m"),
        Float("eps", 1e-10, 1.0, "log"),
        Float("momentum", 0.5, 0.999, "log1m", optional=True),
        Categorical("centered", (False, True)),
    )

    hyperparameters = hyperparameter_checks(alpha=CLOSED_UNIT_INTERVAL)

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        variant: str = "torch",
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            alpha=alpha,
            eps=eps,
            centered=centered,
            weight_decay=weight_decay,
            capturable=capturable,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            variant=variant,
        )
        super().__init__(params, defaults)

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        if group["variant"] == "graves" and not group["centered"]:
            raise ValueError(
                "variant='graves' is the centred form of Graves 2013 (eq. 40); pass centered=True, "
                "or choose variant='torch' or 'eps_inside' for the uncentred one"
            )

    def init_state(self, group: dict[str, Any], param: Tensor) -> dict[str, Any]:
        names = ["square_avg"]
        if group["momentum"] > 0:
            names.append("momentum_buffer")
        if group["centered"]:
            names.append("grad_avg")
        return {"step": make_step_counter(), **zeros_like_all(param, names)}

    def direction(self, group, params, grads, state, step) -> Direction | None:
        alpha, eps, momentum = float(group["alpha"]), float(group["eps"]), float(group["momentum"])
        grads = add_decayed_weights(grads, params, float(group["weight_decay"]))
        ema_of_squares_(state["square_avg"], grads, alpha)
        second_moment = state["square_avg"]
        if group["centered"]:
            ema_(state["grad_avg"], grads, alpha)
            second_moment = centered_second_moment(state["square_avg"], state["grad_avg"])
        if group["variant"] == "torch":
            denominator = root_plus_eps(second_moment, eps)
        else:
            denominator = root_with_eps_inside(second_moment, eps)
        if momentum == 0:
            return Direction(grads, denominator)
        if "momentum_buffer" not in state:
            raise RuntimeError(
                f"RMSprop: momentum is {momentum} but the state was created with momentum=0 (no "
                "momentum_buffer); construct the optimizer with momentum > 0 to schedule it"
            )
        buffers = state["momentum_buffer"]
        torch._foreach_mul_(buffers, momentum)
        if group["variant"] == "graves":
            # Graves's eq. (40) scales by the learning rate inside the buffer, so lr changes act gradually.
            torch._foreach_addcdiv_(buffers, grads, denominator, value=as_float(group["lr"]))
            torch._foreach_sub_(params, buffers)
            return None
        torch._foreach_addcdiv_(buffers, grads, denominator)
        return Direction(buffers)
