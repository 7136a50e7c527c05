"""Stochastic gradient descent with heavy-ball or Nesterov momentum (torch.optim.SGD compatible)."""

from __future__ import annotations

from typing import Any

from torch.optim.sgd import sgd as torch_sgd

from descentlab.optim._engine import RuleOptimizer, as_float
from descentlab.optim._transform import arguments
from descentlab.optim._transforms import trace
from descentlab.optim.search_space import Categorical, Float


class SGD(RuleOptimizer):
    r"""Stochastic gradient descent, optionally with momentum, dampening, Nesterov and L2 weight decay.

    .. math::

        g_t &\leftarrow \nabla_\theta L(\theta_{t-1}) + \lambda \theta_{t-1} \\
        b_t &\leftarrow \begin{cases} g_t & t = 1 \text{ (variant ``"torch"``)} \\
              \mu b_{t-1} + (1 - \tau) g_t & t > 1 \end{cases} \\
        d_t &\leftarrow g_t + \mu b_t \text{ if nesterov else } b_t \\
        \theta_t &\leftarrow \theta_{t-1} - \eta\, d_t

    with learning rate :math:`\eta` (``lr``), momentum :math:`\mu`, dampening :math:`\tau` and weight
    decay :math:`\lambda`. State: ``momentum_buffer`` (only when ``momentum != 0``), as in torch.

    Variants:
        - ``"torch"`` (default): torch.optim.SGD exactly; the buffer starts as a copy of the first
          gradient, so the first step is a plain gradient step (Sutskever et al. 2013 form).
        - ``"ema"``: the exponential-moving-average form from zero, ``b_t = mu b_{t-1} + (1 - mu) g_t``,
          ``b_0 = 0`` (Prince, *Understanding Deep Learning*, eq. 6.11); ``dampening`` must stay 0 since
          the form fixes it to ``mu``. Its steps are ``(1 - mu)`` times shorter than torch's at equal lr.

    Differences from torch.optim.SGD: none in the default variant. ``fused=True`` with variant
    ``"torch"`` on a device torch's fused kernel supports runs that kernel (torch's behaviour exactly);
    elsewhere it runs our multi-tensor path. Sparse gradients run torch's own sparse update (variant
    ``"torch"``). Differences from the papers: the textbook
    heavy ball (Polyak 1964) writes ``v = mu v - eta g``; torch folds ``eta`` out of the buffer, which
    differs only when ``lr`` changes during training.

    Example:
        >>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)  # doctest: +SKIP

    Search space: lr; momentum only when used, then nesterov; it contains plain SGD (momentum unused).

    References:
        Robbins & Monro, "A Stochastic Approximation Method", 1951.
        Polyak, "Some methods of speeding up the convergence of iteration methods", 1964.
        Sutskever, Martens, Dahl & Hinton, "On the importance of initialization and momentum in deep
        learning", ICML 2013.
    """

    reference = "Robbins & Monro 1951; Polyak 1964; Sutskever et al. 2013"
    variants = ("torch", "ema")
    search_space = (
        Float("lr", 1e-4, 10.0, "log"),
        Float("momentum", 0.5, 0.999, "log1m", optional=True),
        Categorical("nesterov", (False, True), when="momentum"),
    )

    fused_devices = ("cpu", "cuda", "xpu", "mps")  # where torch.optim.SGD has its fused kernel
    sparse_gradients = True
    chain = (trace,)  # coupled decay, then heavy-ball (or Nesterov) momentum
    weight_decay_placement = "coupled"
    signature = arguments(
        "lr momentum dampening weight_decay nesterov * maximize foreach differentiable fused variant",
        lr=1e-3,
        annotations={"weight_decay": "float | Tensor"},
    )

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        momentum, dampening = group["momentum"], group["dampening"]
        if group["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ValueError(
                f"nesterov=True needs momentum > 0 and dampening = 0, got momentum={momentum}, "
                f"dampening={dampening}"
            )
        if group["variant"] == "ema" and dampening != 0:
            raise ValueError(f"variant='ema' fixes dampening to momentum; pass dampening=0, got {dampening}")
        if group["variant"] == "ema" and not 0 <= momentum < 1:
            raise ValueError(f"variant='ema' needs momentum in [0, 1), got {momentum}")

    def torch_step(self, group, params, grads, state, steps, **implementation) -> None:
        """torch.optim.SGD's own step: its fused kernel, or its sparse-gradient update."""
        buffers = state.get("momentum_buffer", [None] * len(params))
        torch_sgd(
            params,
            grads,
            buffers,
            weight_decay=float(group["weight_decay"]),
            momentum=float(group["momentum"]),
            lr=as_float(group["lr"]),
            dampening=float(group["dampening"]),
            nesterov=group["nesterov"],
            maximize=group["maximize"],
            **implementation,
        )
        if "momentum_buffer" in state:
            state["momentum_buffer"][:] = buffers
