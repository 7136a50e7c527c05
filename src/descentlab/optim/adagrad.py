"""AdaGrad (torch.optim.Adagrad compatible), with eps inside the root as a variant."""

from __future__ import annotations

from torch.optim.adagrad import adagrad as torch_adagrad

from descentlab.optim._engine import RuleOptimizer, as_float
from descentlab.optim._transform import arguments
from descentlab.optim._transforms import scale_by_lr_decay, scale_by_summed_squares
from descentlab.optim.search_space import Float


class Adagrad(RuleOptimizer):
    r"""AdaGrad: each coordinate's step is divided by the root of its summed squared gradients.

    .. math::

        g_t &\leftarrow \nabla_\theta L(\theta_{t-1}) + \lambda\theta_{t-1} \\
        s_t &\leftarrow s_{t-1} + g_t^2, \qquad s_0 = \tau \\
        \tilde\eta_t &= \eta / (1 + (t - 1)\,\delta) \\
        \theta_t &\leftarrow \theta_{t-1} - \tilde\eta_t\, g_t / (\sqrt{s_t} + \epsilon)

    with learning rate :math:`\eta` (``lr``), ``lr_decay`` :math:`\delta`, ``initial_accumulator_value``
    :math:`\tau` and ``weight_decay`` :math:`\lambda`. State: ``step`` and ``sum``; as in torch, the state
    of every parameter passed to the constructor is created in ``__init__`` (so ``state_dict`` matches
    torch's before the first step), and a complex parameter's ``sum`` starts at :math:`\tau + i\tau`.

    Variants:
        - ``"torch"`` (default): torch.optim.Adagrad exactly (eps outside the root).
        - ``"eps_inside"``: denominator :math:`\sqrt{s_t + \epsilon}`, the form of Keras's ``Adagrad``
          (which has no ``lr_decay``; use ``lr_decay=0`` to match it).

    Relation to the paper: Duchi, Hazan & Singer's diagonal AdaGrad (composite mirror descent with
    :math:`H_t = \delta I + \mathrm{diag}(s_t)^{1/2}` and no regulariser, Figure 1 / eq. (4) with
    :math:`\phi \equiv 0`) is :math:`\theta_{t+1} = \theta_t - \eta\, g_t / (\delta + \|g_{1:t}\|_2)`,
    which is exactly the default ``"torch"`` form with ``lr_decay=0`` and ``initial_accumulator_value=0``
    (the defaults): no separate variant is needed. ``lr_decay``, ``initial_accumulator_value`` and the
    coupled ``weight_decay`` are torch's additions, not the paper's.

    Differences from torch.optim.Adagrad: none for sparse gradients (variant ``"torch"`` runs torch's own
    sparse update) or ``fused=True`` on the CPU (torch's fused kernel; on other devices, where torch has none,
    our multi-tensor path runs); a param group's own ``initial_accumulator_value`` is honoured when state is
    created lazily (torch uses the constructor's value for every group).

    Search space: lr, eps up to 1; eps = 1 contains plain SGD's while the sums of g^2 stay << 1.

    References:
        Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
        Optimization", JMLR 12, 2011, https://jmlr.org/papers/v12/duchi11a.html.
    """

    reference = "Duchi, Hazan & Singer 2011 (JMLR 12)"
    variants = ("torch", "eps_inside")
    search_space = (Float("lr", 1e-5, 10.0, "log"), Float("eps", 1e-10, 1.0, "log"))

    fused_devices = ("cpu",)  # torch.optim.Adagrad's fused kernel exists for the CPU only
    sparse_gradients = True
    eager_state = True  # torch creates every parameter's state in __init__
    # Coupled decay, then divide by the root of the summed squares, with torch's lr decay.
    chain = (scale_by_summed_squares, scale_by_lr_decay)
    weight_decay_placement = "coupled"
    signature = arguments(
        "lr lr_decay weight_decay initial_accumulator_value eps foreach",
        "* maximize differentiable fused variant",
        lr=1e-2,
    )

    def torch_step(self, group, params, grads, state, steps, **implementation) -> None:
        """torch.optim.Adagrad's own step: its fused CPU kernel, or its sparse-gradient update."""
        torch_adagrad(
            params,
            grads,
            state["sum"],
            steps,
            lr=as_float(group["lr"]),
            weight_decay=float(group["weight_decay"]),
            lr_decay=float(group["lr_decay"]),
            eps=float(group["eps"]),
            maximize=group["maximize"],
            **implementation,
        )
