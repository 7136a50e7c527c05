"""Lion: sign of an interpolated momentum, with decoupled weight decay (Chen et al. 2023)."""

from __future__ import annotations

from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._transform import arguments
from descentlab.optim._transforms import scale_by_lion
from descentlab.optim.search_space import Float


class Lion(RuleOptimizer):
    r"""Lion (EvoLved Sign Momentum): every coordinate moves by exactly ``lr`` (plus weight decay).

    .. math::

        c_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        \theta_t &\leftarrow \theta_{t-1} - \eta\,(\operatorname{sign}(c_t) + \lambda\theta_{t-1}) \\
        m_t &\leftarrow \beta_2 m_{t-1} + (1 - \beta_2) g_t, \qquad m_0 = 0

    with learning rate :math:`\eta`, ``betas`` :math:`(\beta_1, \beta_2)` and decoupled weight decay
    :math:`\lambda` multiplied by ``lr`` (Algorithm 2 and the authors' code, where the decay is applied as
    ``theta *= 1 - lr * wd`` before the sign step). State: ``exp_avg`` (:math:`m`).

    Notes: the paper advises an ``lr`` 3-10x smaller and a ``weight_decay`` 3-10x larger than AdamW's,
    since the sign update has a larger norm. ``sign(0) = 0``: a coordinate whose interpolation is exactly
    zero does not move (apart from decay). A NaN or infinite gradient makes its coordinate NaN (and,
    through the momentum, keeps it NaN), as torch's optimizers propagate non-finite values, instead of
    ``sign(NaN) = 0`` freezing it silently. torch.optim has no Lion; differences from the paper: none.

    Example:
        >>> opt = Lion(model.parameters(), lr=1e-4, weight_decay=1.0)  # doctest: +SKIP

    Search space: lr 1e-6..1 (sign steps want rates below Adam's), betas (log1m).

    References:
        Chen, Liang, Huang, Real, Wang, Pham, Dong, Luong, Hsieh, Lu & Le, "Symbolic Discovery of
        Optimization Algorithms", NeurIPS 2023, arXiv:2302.06675, Algorithm 2.
    """

    reference = "Chen et al. 2023 (arXiv:2302.06675), Algorithm 2"
    search_space = (
        Float("lr", 1e-6, 1.0, "log"),
        Float("betas[0]", 0.0, 0.999, "log1m"),
        Float("betas[1]", 0.9, 0.9999, "log1m"),
    )

    chain = (scale_by_lion,)  # decoupled decay by lr * weight_decay, then the sign step
    weight_decay_placement = "decoupled"
    signature = arguments(
        "lr betas weight_decay * maximize foreach differentiable", lr=1e-4, weight_decay=0.0
    )
