"""AdaDelta (torch.optim.Adadelta compatible), with Zeiler's learning-rate-free form as a variant."""

from __future__ import annotations

from typing import Any

from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._transform import arguments
from descentlab.optim._transforms import check_zeiler_lr, scale_by_adadelta
from descentlab.optim.search_space import Float


class Adadelta(RuleOptimizer):
    r"""AdaDelta: a step whose units come from a running RMS of past steps over a running RMS of gradients.

    .. math::

        g_t &\leftarrow \nabla_\theta L(\theta_{t-1}) + \lambda\theta_{t-1} \\
        E[g^2]_t &\leftarrow \rho E[g^2]_{t-1} + (1 - \rho) g_t^2 \\
        \Delta x_t &= \frac{\sqrt{E[\Delta x^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}\, g_t \\
        E[\Delta x^2]_t &\leftarrow \rho E[\Delta x^2]_{t-1} + (1 - \rho) \Delta x_t^2 \\
        \theta_t &\leftarrow \theta_{t-1} - \eta\, \Delta x_t

    with decay ``rho`` :math:`\rho` and ``weight_decay`` :math:`\lambda`. State: ``step``, ``square_avg``
    (:math:`E[g^2]`) and ``acc_delta`` (:math:`E[\Delta x^2]`), as in torch.

    Variants:
        - ``"torch"`` (default): torch.optim.Adadelta exactly: the *unscaled* :math:`\Delta x_t` is
          accumulated, then ``lr`` scales the applied step (Keras and TensorFlow's ``ApplyAdadelta`` do
          the same).
        - ``"zeiler"``: Zeiler 2012, Algorithm 1, which has no learning rate:
          :math:`\theta_t = \theta_{t-1} - \Delta x_t`. ``lr`` is fixed to 1: any other value (at
          construction, in an added param group, or written by a scheduler) raises ``ValueError`` rather
          than being ignored. Numerically it equals ``"torch"`` at ``lr=1``.
        - ``"scaled_accumulator"``: the step actually applied, :math:`s_t = \eta\,\Delta x_t`, is what
          :math:`E[\Delta x^2]` accumulates (:math:`E[\Delta x^2]_t = \rho E[\Delta x^2]_{t-1} +
          (1-\rho) s_t^2`, :math:`\theta_t = \theta_{t-1} - s_t`): Algorithm 1 read literally once a
          learning rate multiplies :math:`\Delta x_t`. With ``lr != 1`` the step size then adapts towards
          :math:`\eta` times its own history, unlike torch. (TensorFlow's ``ApplyAdadelta``, Keras and
          Lasagne all accumulate the unscaled update, like torch; this variant is the literal reading.)

    Differences from the paper: ``lr`` (torch's addition; default 1.0 keeps Algorithm 1) and coupled
    ``weight_decay`` (an L2 term in the objective). Differences from torch.optim.Adadelta: ``capturable=True``
    is accepted but the step is not CUDA-graph capturable (it reads the step count on the host).

    Search space: lr (log; the paper has none), rho (log1m), eps (log).

    References:
        Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012, arXiv:1212.5701, Algorithm 1.
    """

    reference = "Zeiler 2012 (arXiv:1212.5701)"
    variants = ("torch", "zeiler", "scaled_accumulator")
    search_space = (
        Float("lr", 1e-3, 10.0, "log"),
        Float("rho", 0.5, 0.999, "log1m"),
        Float("eps", 1e-10, 1e-2, "log"),
    )

    chain = (scale_by_adadelta,)  # coupled decay, then the ratio of the two running RMS
    weight_decay_placement = "coupled"
    signature = arguments(
        "lr rho eps weight_decay foreach * capturable maximize differentiable variant",
        lr=1.0,
    )

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        check_zeiler_lr(group)
