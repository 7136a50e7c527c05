"""RAdam: Adam with a rectified adaptive step (torch.optim.RAdam compatible), paper and authors' code."""

from __future__ import annotations

from typing import Any

from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._transform import arguments
from descentlab.optim._transforms import scale_by_radam
from descentlab.optim.adam import Adam


class RAdam(RuleOptimizer):
    r"""RAdam: Adam whose adaptive step is switched on, and scaled down, only once the variance of
    the adaptive learning rate is tractable; before that it takes bias-corrected momentum steps.

    .. math::

        g_t &\leftarrow \nabla_\theta L(\theta_{t-1}) \;(+\,\lambda\theta_{t-1}
              \text{ unless decoupled}) \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad \hat m_t = m_t/(1-\beta_1^t) \\
        v_t &\leftarrow \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        \rho_\infty &= 2/(1-\beta_2) - 1, \qquad
              \rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t) \\
        \theta_t &\leftarrow \begin{cases}
              \theta_{t-1} - \eta\, r_t\, \hat m_t \sqrt{1-\beta_2^t}/(\sqrt{v_t} + \epsilon)
                  & \rho_t > 5 \\
              \theta_{t-1} - \eta\, \hat m_t & \text{otherwise} \end{cases} \\
        r_t &= \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}

    With ``decoupled_weight_decay=True`` the decay is :math:`\theta \leftarrow (1-\eta\lambda)\theta`
    first (RAdamW). State: ``step``, ``exp_avg``, ``exp_avg_sq``, as in torch. Note that eps is added to
    :math:`\sqrt{v_t}`, not to :math:`\sqrt{v_t/(1-\beta_2^t)}` as in :class:`Adam` (torch, the authors'
    code and all variants here agree on this).

    Variants (they differ only while :math:`\rho_t` is small, i.e. the first steps: with
    :math:`\beta_2 = 0.999` the adaptive step starts at t = 6 for "torch", t = 5 for "paper"):
        - ``"torch"`` (default): torch.optim.RAdam exactly: rectified step when :math:`\rho_t > 5`,
          otherwise the bias-corrected momentum step :math:`\eta\hat m_t`.
        - ``"paper"``: Liu et al. 2020, Algorithm 2 as written: threshold :math:`\rho_t > 4` (where
          :math:`r_t` first becomes defined), otherwise :math:`\theta_t = \theta_{t-1} - \alpha_t\hat m_t`.
          The paper has no eps (``eps`` must be > 0 here; a tiny one such as ``1e-30`` is the paper
          up to rounding) and no weight decay; ours follow torch.
        - ``"authors-code"``: the authors' public implementation (LiyuanLucasLiu/RAdam, ``radam/radam.py``,
          class ``RAdam`` with its default ``degenerated_to_sgd=False``): rectified step when
          :math:`\rho_t \ge 5`; otherwise **no update at all** (moments are still accumulated, and no
          weight decay is applied either). Its weight decay is always decoupled
          (:math:`\theta \leftarrow \theta - \eta\lambda\theta`, applied only on steps that update), so a
          non-zero ``weight_decay`` requires ``decoupled_weight_decay=True`` here (``ValueError``
          otherwise).
        - ``"authors-code-sgd"``: the same code with ``degenerated_to_sgd=True``: below the threshold it
          takes the momentum step :math:`\eta\hat m_t` (with the decoupled decay), like torch; it differs
          from ``"torch"`` only at :math:`\rho_t = 5` exactly (never for real :math:`\beta_2`), so in
          practice it equals ``"torch"`` with decoupled decay. (An early top-level ``radam.py`` of the
          same repository, without the option, is this form.) The code's per-step cache of
          :math:`\rho_t` and the step size (shared by param groups with equal default betas) is not
          reproduced; it only matters if a scheduler gives such groups different betas.

    Differences from torch.optim.RAdam: none in ``"torch"``; ``capturable=True`` is accepted but the step is
    not CUDA-graph capturable (it reads the step count on the host).

    Search space: Adam's ranges, so the two compare on equal terms.

    References:
        Liu, Jiang, He, Chen, Liu, Gao & Han, "On the Variance of the Adaptive Learning Rate and Beyond",
        ICLR 2020, https://arxiv.org/abs/1908.03265; code: https://github.com/LiyuanLucasLiu/RAdam.
    """

    reference = "Liu et al. 2020 (arXiv:1908.03265)"
    variants = ("torch", "paper", "authors-code", "authors-code-sgd")
    search_space = Adam.search_space

    chain = (scale_by_radam,)  # decay placed by the flag, then the rectified Adam step
    weight_decay_placement = "flag"
    signature = arguments(
        "lr betas eps weight_decay decoupled_weight_decay",
        "* foreach maximize capturable differentiable variant",
        lr=1e-3,
    )

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        variant, weight_decay = group["variant"], group["weight_decay"]
        if (
            variant in ("authors-code", "authors-code-sgd")
            and weight_decay != 0
            and not group["decoupled_weight_decay"]
        ):
            raise ValueError(
                f"variant={variant!r} decays weights decoupled (as the authors' code does); pass "
                f"decoupled_weight_decay=True or weight_decay=0, got weight_decay={weight_decay}"
            )
