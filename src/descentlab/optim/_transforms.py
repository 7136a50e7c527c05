"""The declared transforms that algorithms chain: each names its state, hyperparameters and shape.

Every transform is a few lines of the multi-tensor rules of :mod:`descentlab.optim._rules` between its
declarations (:func:`~descentlab.optim._transform.transform`). A transform receives the incoming
:class:`~descentlab.optim._transform.Direction` (the gradient, after the engine's maximize and coupled
weight decay) and returns the outgoing one; it updates its state in place and never writes the
parameters. Names are verb-first, as optax's: ``scale_by_adam``, ``trace``, ``scale_by_rms``.
"""

from __future__ import annotations

from itertools import repeat
from operator import is_
from typing import Any

import torch

from descentlab.optim._rules import (
    accumulate_squares_,
    bias_correction,
    ema_,
    ema_of_squares_,
    per_tensor,
    plus_eps,
    root_plus_eps,
    root_with_eps_inside,
    running_max_,
    scalar_operand,
    square_root,
    trace_,
)
from descentlab.optim._rules.adaptive import centered_second_moment, decayed_max_of_abs_
from descentlab.optim._rules.sign import sign_of_interpolation
from descentlab.optim._rules.step_sizes import (
    nesterov_step_sizes,
    rectification,
    scheduled_momentum,
    sma_length,
)
from descentlab.optim._transform import (
    STEP,
    Direction,
    Directions,
    EvaluationPoint,
    Hyperparameter,
    State,
    Update,
    as_float,
    scalar_dtype,
    step_scalar,
    transform,
)
from descentlab.optim._validation import CLOSED_UNIT_INTERVAL, NON_NEGATIVE, UNIT_INTERVAL

BETAS = Hyperparameter("betas", (0.9, 0.999))
EPS = Hyperparameter("eps", 1e-8)
FIRST_MOMENT, SECOND_MOMENT = State("exp_avg"), State("exp_avg_sq")


def _variant(update: Update) -> str:
    return update.group.get("variant", "torch")


# --- Adam family --------------------------------------------------------------------------------------
# Adam and AdamW take tensor betas (differentiable and compiled steps), as torch does.
TENSOR_BETAS = Hyperparameter("betas", (0.9, 0.999), annotation="tuple[float | Tensor, float | Tensor]")


@transform(
    hyperparameters=(TENSOR_BETAS, EPS, Hyperparameter("amsgrad", False)),
    state=(
        STEP,
        FIRST_MOMENT,
        SECOND_MOMENT,
        State("max_exp_avg_sq", when_group=lambda group: group["amsgrad"]),
    ),
)
def scale_by_adam(update: Update, direction: Direction) -> Direction:
    """Adam's moments, bias-corrected (variant ``"torch"``), in Kingma & Ba's efficient order
    (``"efficient-eps"``), or uncorrected with AMSGrad's maximum (``"amsgrad-paper"``)."""
    beta1, beta2 = update.hyper("betas")
    state, step, eps = update.state, update.step, update.group["eps"]
    ema_(state["exp_avg"], direction.numerator, beta1)
    ema_of_squares_(state["exp_avg_sq"], direction.numerator, beta2)
    second_moment = state["exp_avg_sq"]
    if update.group["amsgrad"]:
        running_max_(state["max_exp_avg_sq"], second_moment)
        second_moment = state["max_exp_avg_sq"]
    variant = _variant(update)
    if variant == "amsgrad-paper":
        return Direction(state["exp_avg"], root_plus_eps(second_moment, eps))
    if variant == "efficient-eps":
        step_size = square_root(bias_correction(beta2, step)) / bias_correction(beta1, step)
        return Direction(state["exp_avg"], root_plus_eps(second_moment, eps), step_size)
    denominator = root_plus_eps(second_moment, eps, bias_correction(beta2, step))
    return Direction(state["exp_avg"], denominator, 1.0 / bias_correction(beta1, step))


@transform(hyperparameters=(BETAS, EPS), state=(STEP, FIRST_MOMENT, State("exp_inf")))
def scale_by_adamax(update: Update, direction: Direction) -> Direction:
    """AdaMax: the first moment over a decayed infinity norm; eps inside the max (``"torch"``), nowhere
    (``"paper"``) or added to the norm (``"keras"``)."""
    beta1, beta2 = (float(beta) for beta in update.group["betas"])
    eps, variant, state = update.number("eps"), _variant(update), update.state
    ema_(state["exp_avg"], direction.numerator, beta1)
    decayed_max_of_abs_(state["exp_inf"], direction.numerator, beta2, eps if variant == "torch" else 0.0)
    denominator = plus_eps(state["exp_inf"], eps) if variant == "keras" else state["exp_inf"]
    return Direction(state["exp_avg"], denominator, 1.0 / bias_correction(beta1, update.step))


def _unit_product(group: dict[str, Any], param: torch.Tensor) -> torch.Tensor:
    return torch.tensor(1.0, dtype=scalar_dtype())


@transform(
    hyperparameters=(BETAS, EPS, Hyperparameter("momentum_decay", 4e-3, NON_NEGATIVE)),
    state=(STEP, State("mu_product", _unit_product), FIRST_MOMENT, SECOND_MOMENT),
)
def scale_by_nadam(update: Update, direction: Direction) -> tuple[Direction, Direction]:
    """NAdam's two terms: the gradient and the momentum, each with its Nesterov coefficient (lr inside)."""
    beta1, beta2 = (as_float(beta) for beta in update.group["betas"])
    lr, step, state, grads = update.hyper("lr"), update.step, update.state, direction.numerator
    mu = scheduled_momentum(beta1, update.group["momentum_decay"], step)
    mu_next = scheduled_momentum(beta1, update.group["momentum_decay"], step + 1)
    products = state["mu_product"]
    # A compiled step's mu is float64; the eager step multiplies by it in the products' dtype.
    factor = mu.to(products[0].dtype) if isinstance(mu, torch.Tensor) else scalar_operand(mu, products)
    torch._foreach_mul_(products, per_tensor(factor))
    ema_(state["exp_avg"], grads, mu if _variant(update) == "paper" else beta1)
    ema_of_squares_(state["exp_avg_sq"], grads, beta2)
    denominator = root_plus_eps(state["exp_avg_sq"], update.group["eps"], bias_correction(beta2, step))
    if torch.compiler.is_compiling():  # one product per parameter, kept on the graph
        stacked = torch.stack(products).to(torch.float64)
        gradient_steps, momentum_steps = nesterov_step_sizes(lr, mu, mu_next, stacked)
    else:
        sizes = [nesterov_step_sizes(lr, mu, mu_next, float(p.item())) for p in products]
        gradient_steps, momentum_steps = map(list, zip(*sizes))
    # Two passes, as torch: the terms share the denominator but not their coefficients.
    return (
        Direction(grads, denominator, gradient_steps, lr_scaled=False),
        Direction(state["exp_avg"], denominator, momentum_steps, lr_scaled=False),
    )


@transform(hyperparameters=(BETAS, EPS), state=(STEP, FIRST_MOMENT, SECOND_MOMENT))
def scale_by_radam(update: Update, direction: Direction) -> Direction | None:
    """RAdam: the rectified adaptive step once the SMA length passes the variant's threshold, else the
    bias-corrected momentum (no move at all in ``"authors-code"``, whose decay then skips the step too)."""
    beta1, beta2 = (as_float(beta) for beta in update.group["betas"])
    variant, step, state = _variant(update), update.step, update.state
    rho_inf, rho_t = sma_length(beta2, step)
    thresholds = {"paper": rho_t > 4.0, "authors-code": rho_t >= 5.0, "authors-code-sgd": rho_t >= 5.0}
    rectified = thresholds.get(variant, rho_t > 5.0)
    if variant == "authors-code":
        update.decay_multiplier = rectified
    ema_(state["exp_avg"], direction.numerator, beta1)
    ema_of_squares_(state["exp_avg_sq"], direction.numerator, beta2)
    if isinstance(step, torch.Tensor):
        return _compiled_radam_direction(update, beta1, beta2, rectified)
    if variant == "authors-code" and not rectified:
        return None
    if not rectified:
        return Direction(state["exp_avg"], None, 1.0 / bias_correction(beta1, step))
    step_size = rectification(rho_inf, rho_t) * square_root(bias_correction(beta2, step))
    denominator = root_plus_eps(state["exp_avg_sq"], update.group["eps"])
    return Direction(state["exp_avg"], denominator, step_size / bias_correction(beta1, step))


def _compiled_radam_direction(update: Update, beta1: float, beta2: float, rectified: Any) -> Direction:
    """RAdam's direction of a compiled step: the rectified and the momentum step, chosen per parameter.

    ``step`` holds one count per parameter, so whether a parameter's step is rectified is a tensor;
    branching on it would read it on the host. Both steps are computed and ``torch.where`` picks one
    (as torch.optim's capturable RAdam does): the denominator is 1 where the step is not rectified.
    """
    step = update.step
    rho_inf, rho_t = sma_length(beta2, step)
    unrectified_scale = 0.0 if _variant(update) == "authors-code" else 1.0
    rectified_scale = rectification(rho_inf, rho_t) * square_root(bias_correction(beta2, step))
    scale = torch.where(rectified, rectified_scale, unrectified_scale) / bias_correction(beta1, step)
    roots = root_plus_eps(update.state["exp_avg_sq"], update.group["eps"])
    denominator = [torch.where(chosen, root, 1.0) for chosen, root in zip(rectified.unbind(), roots)]
    return Direction(update.state["exp_avg"], denominator, scale)


@transform(hyperparameters=(Hyperparameter("betas", (0.9, 0.99)),), state=(FIRST_MOMENT,))
def scale_by_lion(update: Update, direction: Direction) -> Direction:
    """Lion: the sign of the interpolation of momentum and gradient; the momentum then decays by beta2."""
    beta1, beta2 = (float(beta) for beta in update.group["betas"])
    signs = sign_of_interpolation(update.state["exp_avg"], direction.numerator, 1.0 - beta1)
    ema_(update.state["exp_avg"], direction.numerator, beta2)
    return Direction(signs)


@transform(hyperparameters=(Hyperparameter("betas", (0.0, 0.0)), EPS), state=(FIRST_MOMENT, SECOND_MOMENT))
def scale_by_normalized_moments(update: Update, direction: Direction) -> Direction:
    """``m / (sqrt(v) + eps)`` of uncorrected moving averages (``betas=(0, 0)``: ``g / (|g| + eps)``)."""
    beta, gamma = (float(beta) for beta in update.group["betas"])
    ema_(update.state["exp_avg"], direction.numerator, beta)
    ema_of_squares_(update.state["exp_avg_sq"], direction.numerator, gamma)
    return Direction(update.state["exp_avg"], root_plus_eps(update.state["exp_avg_sq"], update.number("eps")))


# --- per-coordinate adaptive family ---------------------------------------------------------------------
def _filled_sum(group: dict[str, Any], param: torch.Tensor) -> torch.Tensor:
    """AdaGrad's accumulator at ``initial_accumulator_value`` (``v + iv`` for a complex parameter)."""
    value = float(group["initial_accumulator_value"])
    return torch.full_like(param, complex(value, value) if torch.is_complex(param) else value)


@transform(
    hyperparameters=(
        Hyperparameter("eps", 1e-10),
        Hyperparameter("initial_accumulator_value", 0, NON_NEGATIVE),
    ),
    state=(STEP, State("sum", _filled_sum)),
)
def scale_by_summed_squares(update: Update, direction: Direction) -> Direction:
    """AdaGrad: divide by the root of the summed squares, eps outside (``"torch"``) or inside the root."""
    accumulate_squares_(update.state["sum"], direction.numerator)
    if _variant(update) == "eps_inside":
        return Direction(direction.numerator, root_with_eps_inside(update.state["sum"], update.number("eps")))
    return Direction(direction.numerator, root_plus_eps(update.state["sum"], update.number("eps")))


@transform(hyperparameters=(Hyperparameter("lr_decay", 0, NON_NEGATIVE),), state=(STEP,))
def scale_by_lr_decay(update: Update, direction: Direction) -> Direction:
    """torch's AdaGrad learning-rate decay: scale by ``1 / (1 + (t - 1) lr_decay)``."""
    factor = 1.0 / (1.0 + (update.step - 1) * update.number("lr_decay"))
    return Direction(direction.numerator, direction.denominator, direction.scale * factor)


@transform(
    hyperparameters=(
        Hyperparameter("alpha", 0.99, CLOSED_UNIT_INTERVAL),
        EPS,
        Hyperparameter("centered", False),
    ),
    state=(STEP, State("square_avg"), State("grad_avg", when_group=lambda group: group["centered"])),
)
def scale_by_rms(update: Update, direction: Direction) -> Direction:
    """RMSprop: divide by the root of the (centred) mean square, eps outside (``"torch"``) or inside."""
    alpha, eps, state, grads = update.number("alpha"), update.number("eps"), update.state, direction.numerator
    ema_of_squares_(state["square_avg"], grads, alpha)
    second_moment = state["square_avg"]
    if update.group["centered"]:
        ema_(state["grad_avg"], grads, alpha)
        second_moment = centered_second_moment(state["square_avg"], state["grad_avg"])
    root = root_plus_eps if _variant(update) == "torch" else root_with_eps_inside
    return Direction(grads, root(second_moment, eps))


@transform(
    hyperparameters=(Hyperparameter("momentum", 0, NON_NEGATIVE),),
    state=(State("momentum_buffer", when_group=lambda group: group["momentum"] > 0),),
)
def trace_quotient(update: Update, direction: Direction) -> Direction:
    """RMSprop's momentum over the scaled gradient, ``b <- mu b + g / d``; Graves keeps lr inside ``b``."""
    momentum = update.number("momentum")
    if momentum == 0:
        return direction
    if "momentum_buffer" not in update.state:
        raise RuntimeError(
            f"RMSprop: momentum is {momentum} but the state was created with momentum=0 (no "
            "momentum_buffer); construct the optimizer with momentum > 0 to schedule it"
        )
    buffers = update.state["momentum_buffer"]
    torch._foreach_mul_(buffers, scalar_operand(momentum, buffers))
    if _variant(update) == "graves":
        # Graves's eq. (40) scales by the learning rate inside the buffer, so lr changes act gradually.
        lr = step_scalar(update.group["lr"])
        if isinstance(lr, torch.Tensor):  # compiled: addcdiv's value must be a number, so one more kernel
            torch._foreach_add_(
                buffers,
                torch._foreach_mul(torch._foreach_div(direction.numerator, direction.denominator), lr),
            )
        else:
            torch._foreach_addcdiv_(buffers, direction.numerator, direction.denominator, value=lr)
        return Direction(buffers, lr_scaled=False)
    torch._foreach_addcdiv_(buffers, direction.numerator, direction.denominator)
    return Direction(buffers)


def check_zeiler_lr(group: dict[str, Any]) -> None:
    """Zeiler's AdaDelta has no learning rate: refuse any lr but 1 (also one a scheduler wrote)."""
    if group.get("variant") != "zeiler":
        return
    if torch.compiler.is_compiling():  # the check would read a tensor lr on the host; eager steps check
        return
    if as_float(group["lr"]) != 1.0:
        raise ValueError(
            f"Adadelta variant='zeiler' has no learning rate (Zeiler 2012, Algorithm 1), so lr must be 1, "
            f"got {group['lr']!r}; use variant='torch' or 'scaled_accumulator' to scale the step"
        )


@transform(
    hyperparameters=(Hyperparameter("rho", 0.9, CLOSED_UNIT_INTERVAL), Hyperparameter("eps", 1e-6)),
    state=(STEP, State("square_avg"), State("acc_delta")),
)
def scale_by_adadelta(update: Update, direction: Direction) -> Direction:
    """AdaDelta: RMS of past steps over RMS of gradients; ``"scaled_accumulator"`` accumulates lr * step."""
    check_zeiler_lr(update.group)
    rho, eps, state, grads = update.number("rho"), update.number("eps"), update.state, direction.numerator
    ema_of_squares_(state["square_avg"], grads, rho)
    gradient_rms = root_with_eps_inside(state["square_avg"], eps)
    deltas = root_with_eps_inside(state["acc_delta"], eps)
    if torch.is_grad_enabled():  # a differentiable step: backward reads the root and the quotient
        deltas = torch._foreach_mul(torch._foreach_div(deltas, gradient_rms), grads)
    else:
        torch._foreach_div_(deltas, gradient_rms)
        torch._foreach_mul_(deltas, grads)
    if _variant(update) == "scaled_accumulator":
        torch._foreach_mul_(deltas, scalar_operand(step_scalar(update.group["lr"]), deltas))
        ema_of_squares_(state["acc_delta"], deltas, rho)
        return Direction(deltas, lr_scaled=False)
    ema_of_squares_(state["acc_delta"], deltas, rho)
    return Direction(deltas)


# --- momentum family ------------------------------------------------------------------------------------
def _sgd_buffer(group: dict[str, Any], param: torch.Tensor) -> torch.Tensor | None:
    # torch's buffer is a copy of the first gradient (created by the transform); the EMA form starts at 0.
    return torch.zeros_like(param, memory_format=torch.preserve_format) if group["variant"] == "ema" else None


@transform(
    hyperparameters=(
        Hyperparameter("momentum", 0),
        Hyperparameter("dampening", 0, CLOSED_UNIT_INTERVAL),
        Hyperparameter("nesterov", False),
    ),
    state=(State("momentum_buffer", _sgd_buffer, when_group=lambda group: group["momentum"] != 0),),
)
def trace(update: Update, direction: Direction) -> Direction:
    """torch's SGD momentum ``b <- mu b + (1 - tau) g`` (first ``b = g``), or its EMA form; Nesterov's
    ``g + mu b`` with ``nesterov``."""
    grads, momentum = direction.numerator, update.number("momentum")
    if momentum == 0:
        return direction
    buffers, ema = update.state["momentum_buffer"], _variant(update) == "ema"
    if ema:
        trace_(buffers, grads, momentum, dampening=momentum)
    elif any(map(is_, buffers, repeat(None))):  # in C: no generator frame per buffer
        # First step of these parameters (torch creates every buffer of a group together).
        for index, (buffer, grad) in enumerate(zip(buffers, grads)):
            if buffer is None:
                buffers[index] = torch.clone(grad).detach()
            else:
                trace_([buffer], [grad], momentum, update.number("dampening"))
    else:
        trace_(buffers, grads, momentum, update.number("dampening"))
    if update.group["nesterov"]:
        if ema:
            grads = torch._foreach_mul(grads, scalar_operand(1.0 - momentum, grads))
        return Direction(torch._foreach_add(grads, buffers, alpha=momentum))
    return Direction(buffers)


@transform(
    hyperparameters=(Hyperparameter("momentum", 0.9, UNIT_INTERVAL),),  # an EMA weight: 1 would never move
    state=(State("momentum_buffer"),),
)
def trace_average(update: Update, direction: Direction) -> Direction:
    """Momentum as an exponential moving average of the gradients, ``m <- beta m + (1 - beta) g``."""
    ema_(update.state["momentum_buffer"], direction.numerator, update.number("momentum"))
    return Direction(update.state["momentum_buffer"])


def _zero_offset(group: dict[str, Any], param: torch.Tensor) -> torch.Tensor:
    return torch.tensor(0.0, dtype=torch.float64)


def _from_lookahead(update: Update) -> None:
    """``phi = psi + c m``: back from the look-ahead point to the iterate, with the offset last used.

    A compiled step adds ``c m`` with the offsets as tensors (reading them would break the graph).
    """
    params, buffers = update.params, update.state["momentum_buffer"]
    if torch.compiler.is_compiling():
        offsets = [
            offset.to(buffer.dtype) for offset, buffer in zip(update.state["lookahead_offset"], buffers)
        ]
        torch._foreach_add_(params, torch._foreach_mul(buffers, offsets))
        return
    previous = [float(offset) for offset in update.state["lookahead_offset"]]
    if all(value == previous[0] for value in previous):
        if previous[0] != 0.0:
            torch._foreach_add_(params, buffers, alpha=previous[0])
        return
    for param, buffer, value in zip(params, buffers, previous):
        param.add_(buffer, alpha=value)


def _to_lookahead(update: Update, directions: Directions) -> Directions:
    """``psi' = phi - lr m' - lr beta m'``: one kernel, the look-ahead folded into the momentum step."""
    momentum = update.number("momentum")
    offset = step_scalar(update.group["lr"]) * momentum
    offsets = update.state["lookahead_offset"]
    if isinstance(offset, torch.Tensor):
        # Compiled: a float64 tensor. torch 2.13's dynamo drops a per-tensor fill_ / copy_ of captured
        # state when it restarts its analysis for a Python float (the momentum); the multi-tensor copy stays.
        torch._foreach_copy_(offsets, [offset] * len(offsets))
    else:
        for tensor in offsets:
            tensor.fill_(offset)
    assert isinstance(directions, Direction)
    return Direction(directions.numerator, directions.denominator, directions.scale + momentum)


# The look-ahead point psi = phi - c m of Sutskever et al. 2013, c = lr * beta of the step that made m.
nesterov_lookahead = EvaluationPoint(
    "nesterov_lookahead",
    _from_lookahead,
    _to_lookahead,
    # One scalar offset per tensor, the same for all its coordinates: elementwise as NAdam's mu_product
    # (a state not shaped like its parameter keeps the eager step unblocked; see Bucket.blockable).
    state=(State("lookahead_offset", _zero_offset, float64=True),),
)
