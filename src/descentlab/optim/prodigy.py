"""Prodigy: Adam whose step size is a distance estimate learnt per param group (Mishchenko & Defazio 2024)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from descentlab.optim._bucket import is_dtensor
from descentlab.optim._engine import RuleOptimizer, as_float
from descentlab.optim._rules import norms, root_plus_eps, scalar_operand, square_root
from descentlab.optim._transform import (
    Direction,
    GroupReduction,
    GroupState,
    Hyperparameter,
    State,
    Update,
    arguments,
    step_scalar,
    transform,
)
from descentlab.optim._transforms import BETAS, EPS
from descentlab.optim._validation import POSITIVE, UNIT_INTERVAL, Flag, Integer, Real
from descentlab.optim.search_space import Float


class _Beta3:
    """``beta3``: ``None`` (use :math:`\\sqrt{\\beta_2}`) or a decay rate in [0, 1)."""

    def __call__(self, name: str, value: Any) -> None:
        if value is not None:
            UNIT_INTERVAL(name, value)


class _GrowthRate:
    """``growth_rate``: ``None`` (no limit, the default; the authors write ``inf``) or a factor >= 1."""

    def __call__(self, name: str, value: Any) -> None:
        if value is not None and value == math.inf:
            raise ValueError(f"{name} must be finite or None (no limit, the authors' inf), got {value!r}")
        if value is not None:
            Real(1.0)(name, value)


def _beta3(group: dict[str, Any]) -> float:
    return math.sqrt(float(group["betas"][1])) if group["beta3"] is None else float(group["beta3"])


def _bias_correction(group: dict[str, Any], t: float | Tensor) -> float | Tensor:
    """The authors' ``use_bias_correction`` factor of step ``t`` (1-based), else 1 (``t`` a float64 tensor
    in the generated kernel, which takes the group state as tensors)."""
    if not group["use_bias_correction"]:
        return 1.0
    beta1, beta2 = (float(beta) for beta in group["betas"])
    return square_root(1.0 - beta2**t) / (1.0 - beta1**t)


def _statistics_view(group: dict[str, Any], tensor: Tensor) -> Tensor:
    """The entries of a parameter or gradient that ``p0`` and ``s`` follow: every ``slice_p``-th one,
    flattened (a complex tensor as real pairs), as the authors store them; a DTensor (FSDP2) keeps its
    shape and sharding, since its shards cannot be flattened into one tensor without a gather."""
    real = torch.view_as_real(tensor) if torch.is_complex(tensor) else tensor
    if is_dtensor(real):
        return real.detach()
    return real.detach().reshape(-1)[:: group["slice_p"]]


def _check_sliceable(group: dict[str, Any], param: Tensor) -> None:
    if group["slice_p"] != 1 and is_dtensor(param):
        raise ValueError(
            f"Prodigy(slice_p={group['slice_p']}) takes every slice_p-th entry of the flattened parameter, "
            f"which a sharded {type(param).__name__} parameter (FSDP2) cannot give without gathering it; "
            "pass slice_p=1 for sharded parameters"
        )


def _initial_point(group: dict[str, Any], param: Tensor) -> Tensor:
    _check_sliceable(group, param)
    return _statistics_view(group, param).clone()


def _zeros_sliced(group: dict[str, Any], param: Tensor) -> Tensor:
    _check_sliceable(group, param)
    return torch.zeros_like(_statistics_view(group, param))


def _accumulate(update: Update) -> tuple[Tensor, Tensor]:
    """Phase one: ``s <- beta3 s + w g`` and this bucket's ``sum <g, x0 - x>`` and ``sum ||s||_1``."""
    group, state = update.group, update.state
    # In the generated kernel of the sums the group state and lr are float64 tensors.
    d, d0, t = _number(group, "d"), float(group["d0"]), _number(group, "k") + 1
    step_d = d * step_scalar(group["lr"]) * _bias_correction(group, t)
    # The authors weight s by (d / d0) * d * lr * bc, or by (d / d0) * d with safeguard_warmup.
    weight = (d / d0) * (d if group["safeguard_warmup"] else step_d)
    grads = [_statistics_view(group, grad) for grad in update.grads]
    points = [_statistics_view(group, param) for param in update.params]
    offsets = torch._foreach_sub(state["p0"], points)
    beta3 = scalar_operand(_beta3(group), state["s"])
    if torch.compiler.is_compiling():
        # Out of place, copied in, and the norm read from the copy: with s updated in place (or the norm
        # taken from the new value itself) inductor (torch 2.13) stored the new s in a temporary, copied in
        # a loop of its own. Now one loop writes s and sums the dot products, a second reads s for its
        # norm (the sums kernel on 4 x 25M float32: 80 ms, was 102).
        new_s = torch._foreach_mul(state["s"], beta3)
        _add_multiple_(new_s, grads, weight)
        torch._foreach_copy_(state["s"], new_s)
        dot = sum(torch.sum(g * x, dtype=torch.float64) for g, x in zip(grads, offsets))
        return dot, sum(torch.sum(x.abs(), dtype=torch.float64) for x in state["s"])
    dots = [(g * x).sum() if is_dtensor(g) else torch.dot(g, x) for g, x in zip(grads, offsets)]
    torch._foreach_mul_(state["s"], beta3)
    _add_multiple_(state["s"], grads, weight)
    return torch.stack(dots).sum(), torch.stack(norms(state["s"], 1.0)).sum()


def _finish(group: dict[str, Any], totals: list[Tensor]) -> None:
    """Between the phases: the new distance estimate from the group's totals (the step's d is kept)."""
    dot, norm = (float(total) for total in totals)
    d, d0 = float(group["d"]), float(group["d0"])
    group["d_prev"], group["d_denom"] = d, norm
    if norm == 0.0:  # no gradient information yet (or lr = 0): the authors skip the whole step
        return
    t = int(group["k"]) + 1
    step_d = d * as_float(group["lr"]) * _bias_correction(group, t)
    numerator = _beta3(group) * float(group["d_numerator"]) + (d / d0) * step_d * dot
    d_hat = float(group["d_coef"]) * numerator / norm
    if group["variant"] == "paper":
        new_d, d_max = max(d, d_hat), max(float(group["d_max"]), d_hat)
    else:  # the authors' rule: growth limited after the first increase from d0
        if d == d0:
            d = max(d, d_hat)
        d_max = max(float(group["d_max"]), d_hat)
        growth_rate = math.inf if group["growth_rate"] is None else float(group["growth_rate"])
        new_d = min(d_max, d * growth_rate)
    group.update(d=new_d, d_max=d_max, d_hat=d_hat, d_numerator=numerator, k=t)


@transform(
    hyperparameters=(
        BETAS,
        Hyperparameter("beta3", None, _Beta3(), "float | None"),
        EPS,
        Hyperparameter("use_bias_correction", False, Flag()),
        Hyperparameter("safeguard_warmup", False, Flag()),
        Hyperparameter("d0", 1e-6, POSITIVE),
        Hyperparameter("d_coef", 1.0, POSITIVE),
        Hyperparameter("growth_rate", None, _GrowthRate(), "float | None"),
        Hyperparameter("slice_p", 1, Integer(1), "int"),
    ),
    state=(
        State("p0", _initial_point),
        State("s", _zeros_sliced),
        State("exp_avg", when=lambda group, param: float(group["betas"][0]) > 0),
        State("exp_avg_sq"),
    ),
    group_state=(
        GroupState("d", lambda group: float(group["d0"])),
        GroupState("d_max", lambda group: float(group["d0"])),
        GroupState("d_prev", lambda group: float(group["d0"])),
        GroupState("d_hat", lambda group: 0.0),
        GroupState("d_numerator", lambda group: 0.0),
        GroupState("d_denom", lambda group: 0.0),
        GroupState("k", lambda group: 0),
    ),
    elementwise=False,  # p0 and s are flat (sliced) and the step size comes from group-wide sums
    reduction=GroupReduction(_accumulate, _finish),
)
def scale_by_prodigy(update: Update, direction: Direction) -> Direction | None:
    """Adam's moments of ``d_k g`` over ``sqrt(v) + d eps``, scaled by ``d_k`` (times the bias correction)."""
    group, state, grads = update.group, update.state, direction.numerator
    beta1, beta2 = (float(beta) for beta in group["betas"])
    # In the generated kernel the group state is float64 tensors (phase one advanced it on the host).
    compiled = isinstance(group["d_prev"], Tensor)
    d = _number(group, "d_prev")  # d_k, the estimate this step started from
    if "exp_avg" in state:
        torch._foreach_mul_(state["exp_avg"], scalar_operand(beta1, state["exp_avg"]))
        _add_multiple_(state["exp_avg"], grads, d * (1.0 - beta1))
    torch._foreach_mul_(state["exp_avg_sq"], scalar_operand(beta2, state["exp_avg_sq"]))
    if compiled:
        _add_multiple_(state["exp_avg_sq"], torch._foreach_mul(grads, grads), d * d * (1.0 - beta2))
    else:
        torch._foreach_addcmul_(state["exp_avg_sq"], grads, grads, value=d * d * (1.0 - beta2))
    if not compiled and float(group["d_denom"]) == 0.0:
        update.decay_multiplier = 0.0
        return None
    # The authors' code adds d_{k+1} eps (and, with beta1 = 0, steps along d_{k+1} g); the paper uses d_k.
    new_d = d if group["variant"] == "paper" else _number(group, "d")
    step_d = d * _bias_correction(group, _number(group, "k"))
    if compiled:  # the skipped step as a zero step (the kernel cannot branch on d_denom), moments kept
        step_d = torch.where(_number(group, "d_denom") == 0.0, 0.0, step_d)
    update.decay_multiplier = step_d
    denominator = root_plus_eps(state["exp_avg_sq"], new_d * float(group["eps"]))
    if "exp_avg" in state:
        return Direction(state["exp_avg"], denominator, step_d)
    return Direction(grads, denominator, step_d * new_d)


def _number(group: dict[str, Any], key: str) -> float | Tensor:
    """A group-state number: a float, or in the generated kernel a 0-d float64 tensor."""
    value = group[key]
    return value.reshape(()) if isinstance(value, Tensor) else float(value)


def _add_multiple_(targets: list[Tensor], values: list[Tensor], factor: float | Tensor) -> None:
    """``target <- target + factor * value``: one kernel with a float, a product then a sum with a tensor."""
    if isinstance(factor, Tensor):
        torch._foreach_add_(targets, torch._foreach_mul(values, factor))
    else:
        torch._foreach_add_(targets, values, alpha=factor)


class Prodigy(RuleOptimizer):
    r"""Prodigy: Adam on :math:`d_k g`, with a step :math:`\gamma_k d_k` whose :math:`d_k` is learnt.

    :math:`d_k` estimates the distance from the initial point :math:`x_0` to a solution (D-Adaptation with
    weights that favour recent gradients). For each param group, with :math:`\beta_3` = ``beta3``
    (default :math:`\sqrt{\beta_2}`), :math:`\gamma_k` = ``lr`` (a multiplier, default 1):

    .. math::

        m_{k+1} &= \beta_1 m_k + (1-\beta_1)\, d_k g_k, \qquad
        v_{k+1} = \beta_2 v_k + (1-\beta_2)\, d_k^2 g_k^2 \\
        r_{k+1} &= \beta_3 r_k + \gamma_k b_k d_k^2 \langle g_k, x_0 - x_k\rangle / d_0, \qquad
        s_{k+1} = \beta_3 s_k + \gamma_k b_k d_k^2 g_k / d_0 \\
        \hat d_{k+1} &= c\, r_{k+1} / \lVert s_{k+1}\rVert_1, \qquad
        d_{k+1} = \min(\max(d_0, \hat d_1, \dots, \hat d_{k+1}),\; \rho\, d_k) \\
        x_{k+1} &= x_k - \gamma_k b_k d_k\, m_{k+1} / (\sqrt{v_{k+1}} + d_{k+1}\epsilon)
                 \;(-\, \gamma_k b_k d_k \lambda x_k \text{ when decoupled})

    with :math:`c` = ``d_coef``, :math:`\rho` = ``growth_rate`` (``None``: no limit, the authors'
    ``inf``; not applied to the first increase from :math:`d_0`), :math:`b_k` = 1 (with
    ``use_bias_correction``: :math:`\sqrt{1-\beta_2^{k+1}}/(1-\beta_1^{k+1})`), coupled decay
    :math:`g_k + \lambda x_k` when ``decoupled_weight_decay=False``, and sums and norms over every
    parameter of the group (complex ones as real pairs). State: ``p0`` (:math:`x_0`), ``s`` (both
    flat, every ``slice_p``-th entry), ``exp_avg`` (only if :math:`\beta_1 > 0`), ``exp_avg_sq``; in
    the group: ``d``, ``d_max``, ``d_hat``, ``d_numerator`` (:math:`r`), ``d_denom``
    (:math:`\lVert s\rVert_1`), ``k`` and ``d_prev`` (the :math:`d_k` of the last step).

    Variants:
        - ``"authors"`` (default): the authors' ``prodigyopt`` 1.1.2 (``prodigyopt/prodigy.py``), the
          widely used form, as written above. Options of that code, none in the paper:
          ``use_bias_correction`` (:math:`b_k` multiplies the step *and* the weights of :math:`r, s`, so
          it changes :math:`\hat d` too; :math:`b_0` = 0.316 with the default betas),
          ``safeguard_warmup`` (weights :math:`d_k^2/d_0` of :math:`s`, without :math:`\gamma_k b_k`,
          against an lr warm-up inflating :math:`\hat d`), ``d_coef``, ``growth_rate``,
          ``slice_p`` (statistics on every p-th entry only: an approximation for p > 1).
        - ``"paper"``: Mishchenko & Defazio 2024, "Prodigy (Adam version)" (Algorithm 4 of arXiv v3;
          Algorithm 3 of v4 and the ICML text, sec. 5): :math:`d_{k+1} = \max(d_k, \hat d_{k+1})` and
          :math:`d_k\epsilon` in the denominator, line for line (tests/reference/prodigy.py is written
          from it); ``use_bias_correction``, ``safeguard_warmup``, ``growth_rate`` and ``slice_p`` are
          refused. ``beta3``, ``d_coef`` and ``weight_decay`` stay available; at their defaults
          (:math:`\sqrt{\beta_2}`, 1, 0) the algorithm is the paper's.

    Where the authors' code departs from the paper (measured by tests/reference/prodigy.py): it drops
    the paper's :math:`(1-\sqrt{\beta_2})` from :math:`r` and :math:`s` and adds :math:`1/d_0` to both
    (against underflow); both cancel in :math:`\hat d` (this class and the paper-form reference agree
    to 1e-10 over 100 steps). It adds :math:`d_{k+1}\epsilon`, not :math:`d_k\epsilon` (with
    :math:`\beta_1 = 0` it also steps along :math:`d_{k+1}g_k`, not :math:`d_k g_k`): with the default
    ``eps=1e-8``, after 100 steps the iterates of the two forms differ by 2.4e-4 (Rosenbrock), 4.2e-5
    (bowl) and 2.2e-6 (separable quartic, two groups) relative to their size; with ``eps=1e-3`` by 0.93
    (Rosenbrock), 3.4x (bowl) and 3.2e-2 (quartic), since early on :math:`\sqrt{v} \approx 0.03\,
    d_k|g|` is small next to :math:`d_{k+1}\epsilon`. Its ``beta3`` default :math:`\sqrt{\beta_2}` is the
    paper's constant. Its step is skipped entirely while :math:`\lVert s\rVert_1 = 0` (all gradients
    zero, or ``lr = 0``), where the paper's :math:`\hat d = 0/0` is undefined; so is ours, in both
    variants. This class was
    run once beside prodigyopt 1.1.2 (outside the test suite, which has no copy of it): 100 steps of
    ten option sets agree to 5e-15 relative, 1.6e-11 with decoupled decay (rounded in another order).

    Differences from the authors' code: :math:`d` is per param group (theirs is one :math:`d` for the
    optimizer, summed over all groups, which must then share one ``lr`` or have ``lr = 0``); with one
    group (``Prodigy(model.parameters())``) they agree. Decoupled decay is
    ``decoupled_weight_decay=True`` (torch's name; theirs ``decouple=True``), decay
    :math:`\gamma_k d_k b_k \lambda`. The coupled decay does not write into ``param.grad``. An all-zero
    parameter keeps a full ``p0`` (theirs keeps a 0-d zero to save memory). No ``fsdp_in_use``:
    under FSDP2 (DTensor parameters) the sums are over the whole tensors by themselves, and the ``p0``
    and ``s`` of a DTensor parameter keep its shape and sharding (an unevenly sharded tensor has no flat
    view), so ``slice_p > 1`` is refused for it; ``load_state_dict`` reshapes either layout into the
    other, so an FSDP2 checkpoint gathered whole loads into an unsharded Prodigy. torch.optim has no
    Prodigy; optax's ``contrib.prodigy`` always applies the bias correction and has no ``growth_rate``,
    ``safeguard_warmup`` or ``slice_p``.

    ``compiled=True`` in a param group runs the step in two generated kernels
    (:mod:`descentlab.optim._generated`): the sums of :math:`r` and :math:`\lVert s\rVert_1` with the
    update of :math:`s` (one loop that writes :math:`s` and sums :math:`\langle g, x_0 - x\rangle`, and
    a second that reads :math:`s` back for its norm: 24 bytes a parameter in float32), then Adam's
    moments of :math:`d_k g` and the step (one pass, 28 bytes); :math:`d` is computed on the host between
    the two, as in the authors' code. A skipped step (:math:`\lVert s\rVert_1 = 0`) is a step of zero
    there, the moments updated as in the eager step. Measured on 4 tensors of 25M elements on a 2-core
    Xeon: 0.54-0.55 of the 36-byte bound (the two kernels' 52 bytes allow 0.69), about 3.4x eager.

    Low precision: the first steps are :math:`\gamma d_0` = 1e-6 long, which float16 and bfloat16
    parameters round to nothing, so :math:`x` never leaves :math:`x_0` and :math:`d` never grows
    (the authors' code too): keep such parameters in float32, or raise ``d0``.

    Search space: ``d_coef`` (the knob the authors recommend tuning) and :math:`\beta_2`.

    Example:
        >>> import torch
        >>> from descentlab.optim import Prodigy
        >>> w = torch.tensor([3.0, -2.0], requires_grad=True)
        >>> optimizer = Prodigy([w])  # lr = 1: the step size is d, learnt
        >>> for _ in range(200):
        ...     optimizer.zero_grad()
        ...     (w * w).sum().backward()
        ...     optimizer.step()
        >>> bool(w.abs().max() < 0.1), optimizer.param_groups[0]["d"] > 1e-6
        (True, True)

    References:
        Mishchenko & Defazio, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner", ICML 2024,
        https://arxiv.org/abs/2306.06101; code: https://github.com/konstmish/prodigy.
    """

    reference = "Mishchenko & Defazio 2024 (arXiv:2306.06101)"
    variants = ("authors", "paper")
    search_space = (Float("d_coef", 0.1, 10.0, "log"), Float("betas[1]", 0.9, 0.9999, "log1m"))
    # Adam's moments of d g over a distance estimate that the engine's group reduction updates; the
    # engine places the decay (decoupled unless the flag is off).
    chain = (scale_by_prodigy,)
    weight_decay_placement = "flag"
    signature = arguments(
        "lr betas beta3 eps weight_decay decoupled_weight_decay use_bias_correction safeguard_warmup",
        "d0 d_coef growth_rate slice_p * foreach maximize differentiable variant",
        lr=1.0,
        decoupled_weight_decay=True,
    )

    def check_group(self, group) -> None:
        super().check_group(group)
        if group["differentiable"]:
            raise ValueError(
                "Prodigy(differentiable=True) is not supported: the distance estimate d is a number read "
                "on the host from group-wide sums (as in the authors' code); pass differentiable=False"
            )
        if group["variant"] != "paper":
            return
        extensions = {
            "use_bias_correction": False,
            "safeguard_warmup": False,
            "growth_rate": None,
            "slice_p": 1,
        }
        for key, paper_value in extensions.items():
            if group[key] != paper_value:
                raise ValueError(
                    f"Prodigy(variant='paper') has no {key} (the authors' code adds it), got {group[key]!r}; "
                    f"pass {key}={paper_value!r} or use variant='authors'"
                )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict``, then each parameter's ``p0`` and ``s`` in this optimizer's layout.

        A state saved under FSDP2 holds them in the parameter's shape (a DTensor keeps its sharding, see
        the class docstring), gathered whole by ``torch.distributed.checkpoint``; for a plain parameter they
        are the flat entries the authors keep. One layout is the other reshaped (with ``slice_p=1``, the
        only one FSDP2 takes), so either loads into either; a ``p0`` or ``s`` of another size than the
        loaded group's ``slice_p`` keeps (a checkpoint whose state and groups disagree) is refused.
        """
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for param in group["params"]:
                param_state = self.state.get(param)
                if param_state:
                    _in_layout(group, param, param_state)


def _in_layout(group: dict[str, Any], param: Tensor, param_state: dict[str, Any]) -> None:
    """``param_state``'s ``p0`` and ``s`` reshaped to ``param``'s statistics view (flat, or a DTensor's
    shape), or a ``ValueError`` where they hold another number of entries."""
    view = _statistics_view(group, param)
    for key in ("p0", "s"):
        value = param_state.get(key)
        if not isinstance(value, Tensor) or value.shape == view.shape:
            continue
        if value.numel() != view.numel() or is_dtensor(value) != is_dtensor(view):
            raise ValueError(
                f"Prodigy.load_state_dict: state '{key}' of a parameter of shape {tuple(param.shape)} has "
                f"shape {tuple(value.shape)}, where slice_p={group['slice_p']} keeps {view.numel()} entries "
                f"(shape {tuple(view.shape)}): the checkpoint's state and its param group's slice_p disagree"
            )
        param_state[key] = value.reshape(view.shape)
