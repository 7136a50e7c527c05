"""AdaMax (torch.optim.Adamax compatible), with the paper's and Keras's eps conventions as variants."""

from __future__ import annotations

from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._transform import arguments
from descentlab.optim._transforms import scale_by_adamax
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

    chain = (scale_by_adamax,)  # coupled decay, then the first moment over the decayed max-norm
    weight_decay_placement = "coupled"
    signature = arguments(
        "lr betas eps weight_decay foreach * maximize differentiable capturable variant",
        lr=2e-3,
    )
