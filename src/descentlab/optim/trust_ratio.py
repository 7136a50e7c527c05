"""LAMB and LARS: a per-tensor trust ratio ``phi(||w||) / ||u||`` scales each tensor's update.

Both algorithms share one declared transform, :func:`scale_by_trust_ratio`: it adds the weight decay
to the incoming direction (inside the trust ratio, as both papers place it) and scales each tensor by
its own ratio. It reduces whole tensors to norms, so it declares ``elementwise=False`` (the engine never
cuts these tensors into cache-sized blocks).
"""

from __future__ import annotations

from typing import Any

import torch

from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._rules import add_decayed_weights, norms, per_tensor, scalar_operand
from descentlab.optim._transform import (
    Direction,
    Hyperparameter,
    State,
    Transform,
    Update,
    arguments,
    transform,
)
from descentlab.optim._transforms import scale_by_adam
from descentlab.optim._validation import NON_NEGATIVE, Flag, Real
from descentlab.optim.search_space import Float


def check_phi_max(name: str, value: Any) -> None:
    """``phi_max`` is ``None`` (no upper bound) or a finite real >= 0."""
    if value is not None:
        NON_NEGATIVE(name, value)


PHI_MIN = Hyperparameter("phi_min", 0.0, NON_NEGATIVE)
PHI_MAX = Hyperparameter("phi_max", None, check_phi_max, annotation="float | None")
TRUST_COEFFICIENT = Hyperparameter("trust_coefficient", 1e-3, Real(0.0, low_open=True))
ADAPT = Hyperparameter("adapt", True, Flag())


def _materialised(direction: Direction) -> list[torch.Tensor]:
    """``scale * numerator / denominator`` as tensors (the numerator itself when that is all it is)."""
    values = direction.numerator
    if direction.denominator is not None:
        values = torch._foreach_div(values, direction.denominator)
    scale = direction.scale
    if isinstance(scale, torch.Tensor):  # a compiled step's factors (one per tensor): never read on the host
        values = torch._foreach_mul(values, per_tensor(scale))
    elif isinstance(scale, list) or scale != 1.0:
        values = torch._foreach_mul(values, scalar_operand(scale, values))
    return values


def trust_ratios(
    param_norms: list[torch.Tensor], update_norms: list[torch.Tensor], group: dict[str, Any]
) -> torch.Tensor:
    """One ratio per tensor, ``c * phi(||w||) / ||u||``; 1 where either side is 0 (see the classes)."""
    high = group["phi_max"]
    phi = torch.stack(param_norms).clamp(
        min=float(group["phi_min"]), max=None if high is None else float(high)
    )
    denominator = torch.stack(update_norms)
    defined = (phi > 0) & (denominator > 0)
    ratio = group["trust_coefficient"] * phi / torch.where(defined, denominator, 1.0)
    return torch.where(defined, ratio, 1.0)


def scale_by_trust_ratio(split_norm_variants: tuple[str, ...] = ()) -> Transform:
    """The shared trust-ratio transform: ``u = d + lambda w``, then ``u * c phi(||w||) / ||u||``.

    For the variants in ``split_norm_variants`` the norm is LARS's ``||d|| + lambda ||w||`` (You, Gitman
    & Ginsburg, the local-rate line of Algorithm 1; eq. 6 is its form without decay) instead of
    ``||d + lambda w||``. With ``adapt=False`` the ratio is 1.
    """

    @transform(
        hyperparameters=(Hyperparameter("weight_decay", 0.0), TRUST_COEFFICIENT, PHI_MIN, PHI_MAX, ADAPT),
        elementwise=False,  # one norm per tensor
    )
    def scale_by_trust_ratio(update: Update, direction: Direction) -> Direction:
        weight_decay, params = float(update.group["weight_decay"]), update.params
        updates = _materialised(direction)
        if not update.group["adapt"] or not params:
            return Direction(add_decayed_weights(updates, params, weight_decay))
        # A differentiable step updates the parameters in place after this, so the norm's backward
        # must read a copy of them.
        param_norms = norms([param.clone() for param in params] if torch.is_grad_enabled() else params)
        split = update.group.get("variant") in split_norm_variants
        if split:
            update_norms = torch._foreach_add(norms(updates), param_norms, alpha=weight_decay)
        updates = add_decayed_weights(updates, params, weight_decay)
        if not split:
            update_norms = norms(updates)
        ratios = per_tensor(trust_ratios(param_norms, update_norms, update.group).to(updates[0].dtype))
        # Never scale the incoming tensors (the gradients) in place; nor in a differentiable step, whose
        # norm's backward reads ``updates``.
        if updates is direction.numerator or torch.is_grad_enabled():
            return Direction(torch._foreach_mul(updates, ratios))
        torch._foreach_mul_(updates, ratios)
        return Direction(updates)

    return scale_by_trust_ratio


@transform(
    hyperparameters=(Hyperparameter("momentum", 0.9, Real(0.0, 1.0, high_open=True)),),
    state=(State("momentum_buffer", when=lambda group, param: group["momentum"] != 0),),
)
def trace_lars(update: Update, direction: Direction) -> Direction:
    """LARS's momentum ``v <- m v + lr * u`` (lr inside, Algorithm 1), or ``b <- m b + u`` (``"timm"``)."""
    momentum = update.number("momentum")
    if momentum == 0:
        return direction
    lr_inside = update.group["variant"] != "timm"
    buffers = update.state["momentum_buffer"]
    lr = update.hyper("lr") if lr_inside else 1.0
    torch._foreach_mul_(buffers, scalar_operand(momentum, buffers))
    if isinstance(lr, torch.Tensor):  # a differentiable step with a tensor lr: keep it on the graph
        torch._foreach_add_(buffers, torch._foreach_mul(direction.numerator, lr))
    else:
        torch._foreach_add_(buffers, direction.numerator, alpha=lr)
    return Direction(buffers, lr_scaled=not lr_inside)


class LAMB(RuleOptimizer):
    r"""LAMB: Adam's bias-corrected ratio plus decoupled decay, rescaled per tensor by a trust ratio.

    You et al. 2020, Algorithm 2, for each tensor :math:`x` (a "layer"):

    .. math::

        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t \leftarrow \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t), \qquad \hat v_t = v_t / (1 - \beta_2^t) \\
        r_t &= \hat m_t / (\sqrt{\hat v_t} + \epsilon), \qquad u_t = r_t + \lambda x_{t-1} \\
        x_t &\leftarrow x_{t-1} - \eta\, \frac{\phi(\lVert x_{t-1} \rVert)}{\lVert u_t \rVert}\, u_t,
        \qquad \phi(z) = \min(\max(z, \gamma_l), \gamma_u)

    with ``phi_min`` :math:`\gamma_l` and ``phi_max`` :math:`\gamma_u`, default 0 and ``None``
    (:math:`\infty`): :math:`\phi` is the identity, as in the paper's experiments (sec. 3 bounds
    :math:`\phi` between :math:`\alpha_l` and :math:`\alpha_u` only for the convergence analysis).
    State: ``step``, ``exp_avg``, ``exp_avg_sq`` (torch's Adam names).

    Zero norms: the paper leaves :math:`\phi(0)/\lVert u \rVert` and :math:`0/0` undefined; here the ratio
    is 1 when :math:`\phi(\lVert x \rVert) = 0` or :math:`\lVert u \rVert = 0` (as NVIDIA apex, timm and
    optax do), so a zero-initialised tensor (a bias) moves by :math:`\eta u` instead of never moving.
    ``adapt=False`` in a param group sets the ratio to 1 there (the decay stays): the usual exclusion of
    biases and normalisation scales, e.g. ``[{"params": weights}, {"params": biases_and_norms, "adapt":
    False, "weight_decay": 0.0}]``.

    Differences from the paper: none in the update; :math:`\eta_t` is the group's ``lr`` (schedule it with
    any scheduler: the paper warms up, then decays polynomially); the trust ratio is per tensor (the
    paper's "layer").

    Differences from widely used implementations, with their size on the float64 reference's 3x4
    quartic problem (tests/optim/test_trust_ratio.py; lr 0.01, decay 0.01, relative distance of the
    iterate from Algorithm 2's after 100 steps):

    - NVIDIA apex ``FusedLAMB`` and timm's ``Lamb`` clip the *global* gradient norm to
      ``max_grad_norm=1.0`` before the moments (use :func:`descentlab.training.clip_grad_norm` before
      ``step()``) and by default adapt only tensors with nonzero weight decay (``use_nvlamb=False`` /
      ``always_adapt=False``): :func:`descentlab.training.weight_decay_param_groups`, then
      ``group["adapt"] = group["weight_decay"] > 0`` for each group, is that rule.
    - Both offer ``bias_correction=False`` (arXiv v1 of the paper) and ``grad_averaging=False``
      (:math:`m \leftarrow \beta_1 m + g`). The trust ratio normalises :math:`\lVert u \rVert`, so these
      only reweight :math:`r_t` against :math:`\lambda x` (by :math:`(1-\beta_1^t)/\sqrt{1-\beta_2^t}`,
      3.2 at :math:`t=1`, tending to 1, and by :math:`1/(1-\beta_1) = 10`): ``bias_correction=False``
      is 1.8e-3 here.
    - timm's ``trust_clip`` (LAMBC) caps the ratio at 1: 0.26 here (a norm-1.5 tensor's steps shrink).
    - cybertronai's ``pytorch-lamb`` clamps :math:`\phi` to :math:`[0, 10]` (``phi_max=10``;
      no change here); apex, timm and optax default to ``eps=1e-6``, as we do (``eps=1e-8``: 1.9e-7).
    - optax's ``lamb`` is this algorithm (ratio 1 on zero norms), with ``weight_decay=0`` by default.
    - The norm of a float32 tensor of over 65536 elements on the CPU is summed in pieces combined in
      float64, within 3e-7 of the exact norm; ``torch.norm``, which the PyTorch implementations call, is
      off there by 5e-5 at 3M elements and 1.2e-3 at 25M (pytorch/pytorch#169237), so on such tensors
      they agree with ours only to that.
    - torch.optim has no LAMB.

    Defaults: ``lr=1e-3``, ``eps=1e-6`` and ``weight_decay=0.01``, as apex's ``FusedLAMB`` and timm's
    ``Lamb`` (Algorithm 2 names no values).

    Example:
        >>> groups = weight_decay_param_groups(model, weight_decay=0.01)  # doctest: +SKIP
        >>> for group in groups:  # doctest: +SKIP
        ...     group["adapt"] = group["weight_decay"] > 0
        >>> optimizer = LAMB(groups, lr=2e-3)  # doctest: +SKIP

    Search space: lr (log), betas (log1m), weight_decay (log).

    References:
        You, Li, Reddi, Hseu, Kumar, Bhojanapalli, Song, Demmel, Keutzer & Hsieh, "Large Batch
        Optimization for Deep Learning: Training BERT in 76 minutes", ICLR 2020, arXiv:1904.00962,
        Algorithm 2.
    """

    reference = "You et al. 2020 (arXiv:1904.00962), Algorithm 2"
    search_space = (
        Float("lr", 1e-5, 1.0, "log"),
        Float("betas[0]", 0.0, 0.999, "log1m"),
        Float("betas[1]", 0.9, 0.9999, "log1m"),
        Float("weight_decay", 1e-5, 0.1, "log"),
    )

    # Adam's bias-corrected ratio r_t, then decay and the trust ratio inside u_t (not the engine's decay).
    chain = (scale_by_adam, scale_by_trust_ratio())
    signature = arguments(
        "lr betas eps weight_decay * phi_min phi_max adapt maximize foreach differentiable",
        lr=1e-3,
        eps=1e-6,
        weight_decay=0.01,
        fixed={"amsgrad": False, "trust_coefficient": 1.0},
    )

    def check_group(self, group) -> None:
        super().check_group(group)
        if group["phi_max"] is not None and float(group["phi_min"]) > float(group["phi_max"]):
            raise ValueError(
                f"LAMB: phi_min must be <= phi_max, got phi_min={group['phi_min']!r} > "
                f"phi_max={group['phi_max']!r}; lower phi_min or raise phi_max"
            )


class LARS(RuleOptimizer):
    r"""LARS: SGD with momentum whose step is rescaled per tensor by a local learning rate.

    You, Gitman & Ginsburg 2017, Algorithm 1 (its local rate is eq. 6 with the decay term added to the
    denominator), for each tensor :math:`w`:

    .. math::

        \lambda_t &= \eta\, \frac{\lVert w_t \rVert}{\lVert g_t \rVert + \beta \lVert w_t \rVert} \\
        v_{t+1} &\leftarrow m\, v_t + \gamma_t \lambda_t\, (g_t + \beta w_t), \qquad v_0 = 0 \\
        w_{t+1} &\leftarrow w_t - v_{t+1}

    with trust coefficient :math:`\eta` (``trust_coefficient``), weight decay :math:`\beta`
    (``weight_decay``), momentum :math:`m` and global rate :math:`\gamma_t` (``lr``, kept inside the
    momentum buffer as in the algorithm, so a scheduled lr changes the step gradually). State:
    ``momentum_buffer`` (with ``momentum > 0``). :math:`\lambda_t = 1` where :math:`\lVert w_t \rVert = 0`
    or the denominator is 0 (the paper leaves it undefined; timm, apex LARC and optax use 1), and
    ``adapt=False`` in a param group sets it to 1 there: the paper's practice (and every common
    implementation's) of not adapting biases and batch-norm parameters, e.g. ``[{"params": weights},
    {"params": biases_and_norms, "adapt": False, "weight_decay": 0.0}]``.

    Variants:
        - ``"paper"`` (default): Algorithm 1 as above.
        - ``"timm"``: timm's ``Lars`` (and torch SGD's momentum convention): the buffer holds
          :math:`b \leftarrow m b + \lambda(g + \beta w)` and the step is :math:`w \leftarrow w - \gamma b`:
          identical under a constant lr, different whenever lr changes. (timm also adds ``eps=1e-8`` to
          the denominator and adapts only tensors with nonzero weight decay unless ``always_adapt``.)
        - ``"optax"``: optax's ``lars``: the norm of the decayed gradient,
          :math:`\lambda = \eta \lVert w \rVert / \lVert g + \beta w \rVert`, which is at least the
          paper's (triangle inequality): a larger step whenever :math:`\beta > 0`.

    Differences from the paper: :math:`\gamma_t` is the group's ``lr`` (the paper's polynomial decay
    :math:`\gamma_0 (1 - t/T)^2` is a scheduler, e.g. ``PolynomialLR(power=2)``); no Nesterov option;
    the local rate is per tensor (the paper's "layer"). torch.optim has no LARS. Norms of long float32
    tensors on the CPU are summed in pieces, as for :class:`LAMB` (timm's ``torch.norm`` is off by up to
    1.2e-3 at 25M elements).

    Measured (float64 reference, 3x4 quartic problem, lr 1, momentum 0.9, decay 0.01, trust coefficient
    0.01, relative distance after 100 steps): ``"optax"`` 7.7e-3 from ``"paper"``; ``"timm"`` 0 under a
    constant lr and 8.6e-3 under a halving every 25 steps (tests/optim/test_trust_ratio.py checks both
    effects). Excluding biases and norms as timm does: :func:`descentlab.training.weight_decay_param_groups`
    and ``group["adapt"] = group["weight_decay"] > 0`` per group.

    Defaults: ``trust_coefficient=1e-3`` (the paper's experiments), ``momentum=0.9``, ``lr=1`` (the local
    rate is already small) and ``weight_decay=0``, as timm's ``Lars``.

    Example:
        >>> optimizer = LARS(model.parameters(), lr=2.0, weight_decay=5e-4)  # doctest: +SKIP
        >>> scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, 100, power=2)  # doctest: +SKIP

    Search space: lr (log), momentum (log1m), trust_coefficient (log), weight_decay (log).

    References:
        You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks", arXiv:1708.03888, 2017,
        Algorithm 1 and eq. 6.
    """

    reference = "You, Gitman & Ginsburg 2017 (arXiv:1708.03888), Algorithm 1"
    variants = ("paper", "timm", "optax")
    search_space = (
        Float("lr", 1e-3, 100.0, "log"),
        Float("momentum", 0.0, 0.99, "log1m"),
        Float("trust_coefficient", 1e-4, 0.1, "log"),
        Float("weight_decay", 1e-6, 1e-2, "log"),
    )

    # The decay and the local rate (split norm except in "optax"), then the momentum with lr inside.
    chain = (scale_by_trust_ratio(split_norm_variants=("paper", "timm")), trace_lars)
    signature = arguments(
        "lr momentum weight_decay trust_coefficient * adapt maximize foreach differentiable variant",
        lr=1.0,
        fixed={"phi_min": 0.0, "phi_max": None},
    )


__all__ = ["LAMB", "LARS", "scale_by_trust_ratio", "trace_lars", "trust_ratios"]
