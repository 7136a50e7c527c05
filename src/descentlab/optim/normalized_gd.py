"""Normalized gradient descent: a fixed-length step along the sign of each coordinate (UDL eqs. 6.13-6.14)."""

from __future__ import annotations

from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._transform import arguments
from descentlab.optim._transforms import scale_by_normalized_moments
from descentlab.optim.search_space import Float


class NormalizedGD(RuleOptimizer):
    r"""Per-coordinate normalized gradient descent (sign-like steps), optionally with moving averages.

    The book's form (Prince, UDL eqs. 6.13-6.14), the default ``betas=(0, 0)``:

    .. math::

        m_{t+1} &\leftarrow \nabla_\phi L(\phi_t), \qquad v_{t+1} \leftarrow (\nabla_\phi L(\phi_t))^2 \\
        \phi_{t+1} &\leftarrow \phi_t - \alpha\, \frac{m_{t+1}}{\sqrt{v_{t+1}} + \epsilon}

    so every coordinate moves by (almost exactly) ``lr`` in its downhill direction. With ``betas=(beta,
    gamma)`` the two statistics become the moving averages of eq. 6.15,
    :math:`m_{t+1} = \beta m_t + (1-\beta) g`, :math:`v_{t+1} = \gamma v_t + (1-\gamma) g^2` (from zero),
    with the same update 6.14: Adam *without* the bias correction of eq. 6.16. State: ``exp_avg``,
    ``exp_avg_sq`` (torch's Adam names).

    Notes: eps sits outside the square root, as in eq. 6.14 (``sqrt(v) + eps``). Without averaging the
    method does not converge to the exact minimum; it oscillates around it with amplitude ``lr`` (the
    book's figure 6.9c) — decay ``lr`` with a scheduler. With nonzero betas and no bias correction the
    first steps are short (``m`` and ``v`` start at zero). torch.optim has no such class.

    Example:
        >>> opt = NormalizedGD(model.parameters(), lr=1e-3)  # doctest: +SKIP

    Search space: lr (log).

    References:
        Prince, *Understanding Deep Learning*, MIT Press 2023, sec. 6.4, eqs. 6.13-6.15.
    """

    reference = "Prince, Understanding Deep Learning 2023, eqs. 6.13-6.14"
    search_space = (Float("lr", 1e-5, 10.0, "log"),)

    chain = (scale_by_normalized_moments,)
    signature = arguments("lr betas eps * maximize foreach differentiable", lr=1e-3)
