"""NAdam: Adam with Nesterov momentum (torch.optim.NAdam compatible), and Dozat's published form."""

from __future__ import annotations

from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._transform import arguments
from descentlab.optim._transforms import scale_by_nadam
from descentlab.optim.adam import Adam


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

    # Decay placed by the flag, then Adam's moments with the Nesterov look-ahead in two terms.
    chain = (scale_by_nadam,)
    weight_decay_placement = "flag"
    signature = arguments(
        "lr betas eps weight_decay momentum_decay decoupled_weight_decay",
        "* foreach maximize capturable differentiable variant",
        lr=2e-3,
    )
