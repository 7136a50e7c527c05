"""RMSprop (torch.optim.RMSprop compatible), with eps inside the root and Graves's 2013 form as variants."""

from __future__ import annotations

from typing import Any

from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._transform import arguments
from descentlab.optim._transforms import scale_by_rms, trace_quotient
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

    # Coupled decay, divide by the RMS (centred or not), then momentum over the quotient.
    chain = (scale_by_rms, trace_quotient)
    weight_decay_placement = "coupled"
    signature = arguments(
        "lr alpha eps weight_decay momentum centered capturable foreach maximize differentiable * variant",
        lr=1e-2,
    )

    def check_group(self, group: dict[str, Any]) -> None:
        super().check_group(group)
        if group["variant"] == "graves" and not group["centered"]:
            raise ValueError(
                "variant='graves' is the centred form of Graves 2013 (eq. 40); pass centered=True, "
                "or choose variant='torch' or 'eps_inside' for the uncentred one"
            )
