"""Momentum and Nesterov momentum in the exponential-moving-average form of Prince's UDL (eqs. 6.11-6.12)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._transform import arguments
from descentlab.optim._transforms import nesterov_lookahead, trace_average
from descentlab.optim.search_space import Float


class Momentum(RuleOptimizer):
    r"""Gradient descent with momentum as an exponential moving average of the gradients.

    .. math::

        g_t &\leftarrow \nabla_\phi L(\phi_t) + \lambda \phi_t \\
        m_{t+1} &\leftarrow \beta m_t + (1 - \beta) g_t, \qquad m_0 = 0 \\
        \phi_{t+1} &\leftarrow \phi_t - \alpha\, m_{t+1}

    with learning rate :math:`\alpha` (``lr``), momentum coefficient :math:`\beta` (``momentum``; the
    group key is called ``momentum`` so torch's OneCycleLR can cycle it) and optional L2 weight decay
    :math:`\lambda`. State: ``momentum_buffer`` (:math:`m`).

    Differences from torch.optim.SGD(momentum=beta): torch's buffer is ``b <- beta b + g`` started at
    the first gradient, so its steps are about ``1 / (1 - beta)`` times longer at equal ``lr``; this
    class equals ``descentlab.optim.SGD(..., variant="ema")``. Differences from the book: none (the book
    has no weight decay; ``weight_decay=0`` by default).

    Example:
        >>> opt = Momentum(model.parameters(), lr=0.05, momentum=0.9)  # doctest: +SKIP

    Search space: lr, momentum from 0 (log1m); it contains plain SGD's (momentum = 0 is gradient descent).

    References:
        Prince, *Understanding Deep Learning*, MIT Press 2023, sec. 6.3.1, eq. 6.11.
        Polyak, "Some methods of speeding up the convergence of iteration methods", 1964.
    """

    reference = "Prince, Understanding Deep Learning 2023, eq. 6.11; Polyak 1964"
    search_space = (Float("lr", 1e-4, 10.0, "log"), Float("momentum", 0.0, 0.999, "log1m"))

    chain = (trace_average,)  # coupled decay, then the moving average of the gradients
    weight_decay_placement = "coupled"
    signature = arguments(
        "lr momentum weight_decay * maximize foreach differentiable",
        lr=1e-2,
        weight_decay=0.0,
    )


class Nesterov(Momentum):
    r"""Nesterov accelerated momentum (EMA form): the gradient is taken at the look-ahead point.

    The published update (Prince, UDL eq. 6.12):

    .. math::

        m_{t+1} &\leftarrow \beta m_t + (1 - \beta)\, \nabla_\phi L(\phi_t - \alpha \beta m_t) \\
        \phi_{t+1} &\leftarrow \phi_t - \alpha\, m_{t+1}

    **Which point the parameters hold.** An optimizer step only sees the gradient at the parameters it
    holds, so between steps the parameters hold the *look-ahead point*
    :math:`\psi_t = \phi_t - c_t m_t` (the change of variables of Sutskever et al. 2013 / Bengio et al.
    2013), where :math:`c_t = \alpha\beta` of the step that produced :math:`m_t` (state
    ``lookahead_offset``, a float64 scalar tensor per parameter, kept float64 by ``load_state_dict``).
    Your usual ``loss.backward()`` therefore evaluates :math:`\nabla L(\psi_t)`, exactly the gradient
    eq. 6.12 asks for. One step then does

    .. math::

        \phi_t = \psi_t + c_t m_t, \quad m_{t+1} = \beta m_t + (1 - \beta)(\nabla L(\psi_t) + \lambda\psi_t),
        \quad \psi_{t+1} = \phi_t - \alpha (1 + \beta) m_{t+1}, \quad c_{t+1} = \alpha\beta.

    The true iterate :math:`\phi` (the point the book reports and that you should evaluate or save) is
    available through :meth:`iterate` (a new tensor for one parameter) and :meth:`at_iterate` (a context
    manager that swaps every parameter to :math:`\phi` and restores :math:`\psi` on exit, bit for bit).
    Before the first step :math:`m_0 = 0`, so both points coincide.

    With constant ``lr`` and ``momentum`` this is eq. 6.12 exactly (up to rounding). When a scheduler
    changes them, :math:`\phi` stays exact (the offset actually used is stored), but the gradient of step
    ``t`` is taken at :math:`\phi_t - \alpha_{t-1}\beta_{t-1} m_t`, the look-ahead chosen at the end of
    the previous step, since the new ``lr`` is not known then. ``weight_decay`` adds
    :math:`\lambda\psi_t`, the gradient of :math:`\tfrac{\lambda}{2}\|\phi\|^2` at the same look-ahead point.

    Differences from torch.optim.SGD(nesterov=True): torch uses the un-averaged buffer ``b <- mu b + g``
    and applies ``g + mu b`` at the *held* point (Bengio et al.'s reformulation without tracking
    :math:`\phi`); ``descentlab.optim.SGD(nesterov=True, variant="ema")`` is the same ``psi`` recursion as
    this class with ``1 - beta`` scaling. Differences from the book: none at constant hyperparameters.

    Example:
        >>> opt = Nesterov(model.parameters(), lr=0.05, momentum=0.9)  # doctest: +SKIP
        >>> with opt.at_iterate():  # doctest: +SKIP
        ...     validation_loss = evaluate(model)

    Search space: Momentum's (inherited); momentum = 0 is plain gradient descent here too.

    References:
        Prince, *Understanding Deep Learning*, MIT Press 2023, sec. 6.3.2, eq. 6.12.
        Nesterov, "A method for solving the convex programming problem with convergence rate O(1/k^2)",
        1983. Sutskever, Martens, Dahl & Hinton, ICML 2013. Bengio, Boulanger-Lewandowski & Pascanu,
        "Advances in optimizing recurrent networks", ICASSP 2013.
    """

    reference = "Prince, Understanding Deep Learning 2023, eq. 6.12; Nesterov 1983"
    # The parameters hold the look-ahead point psi; the engine moves them to phi and back each step.
    evaluation_point = nesterov_lookahead

    def iterate(self, param: Tensor) -> Tensor:
        """The true iterate ``phi = psi + c m`` of ``param`` as a new tensor (a copy if it has no state)."""
        param_state = self.state.get(param)
        if not param_state:
            return param.detach().clone()
        offset = float(param_state["lookahead_offset"])
        return param.detach() + offset * param_state["momentum_buffer"]

    @contextmanager
    def at_iterate(self) -> Iterator[None]:
        """Swap every parameter to its true iterate ``phi`` in the block; restore ``psi`` exactly after."""
        saved = []
        with torch.no_grad():
            for group in self.param_groups:
                for param in group["params"]:
                    if self.state.get(param):
                        saved.append((param, param.detach().clone()))
                        param.copy_(self.iterate(param))
        try:
            yield
        finally:
            with torch.no_grad():
                for param, value in saved:
                    param.copy_(value)
