"""SWATS: start with Adam, switch to SGD with momentum when the projected learning rate settles."""

from __future__ import annotations

from typing import Any

import torch

from descentlab.optim._engine import RuleOptimizer, as_float
from descentlab.optim._rules import bias_correction, ema_, ema_of_squares_, per_tensor, root_plus_eps, trace_
from descentlab.optim._transform import (
    STEP,
    Direction,
    Hyperparameter,
    State,
    Update,
    UpdateSums,
    arguments,
    is_graph_tensor,
    step_scalar,
    transform,
)
from descentlab.optim._transforms import BETAS, FIRST_MOMENT, SECOND_MOMENT
from descentlab.optim._validation import POSITIVE
from descentlab.optim.adam import Adam

ADAM_PHASE, SGD_PHASE = 0.0, 1.0


def _float64_scalar(group: dict[str, Any], param: torch.Tensor) -> torch.Tensor:
    return torch.zeros((), dtype=torch.float64)


# The group's switch scalars, one float64 copy in each parameter's state (kept float64 by load_state_dict);
# a "paper" step only reads them (its UpdateSums's finish writes them), so cache blocks share them.
SWITCH_STATE = tuple(
    State(name, _float64_scalar, float64=True, shared_by_blocks=True)
    for name in ("phase", "lambda_avg", "sgd_lr", "switch_step", "switch_lr")
)


# The traced group's key for the phase a generated kernel is specialised on (see _kernel_phase).
KERNEL_PHASE = "swats_kernel_phase"


def _kernel_phase(group: dict[str, Any], state: dict[str, list[torch.Tensor]]) -> dict[str, Any]:
    """The phase the generated kernel of a part is specialised on: the part's (a "paper" group switches
    as a whole), or ``None`` where its tensors are in different phases (a "per-tensor" part mid-switch),
    for which the kernel computes both phases and selects."""
    phases = state["phase"] if group["variant"] == "per-tensor" else state["phase"][:1]
    values = {phase.item() for phase in phases}
    return {KERNEL_PHASE: values.pop() if len(values) == 1 else None}


@transform(
    hyperparameters=(BETAS, Hyperparameter("eps", 1e-9), Hyperparameter("switch_rtol", 1e-5, POSITIVE)),
    state=(STEP, FIRST_MOMENT, SECOND_MOMENT, State("momentum_buffer"), *SWITCH_STATE),
    # The "paper" switch test's dot products go through UpdateSums, so its update may be cut into blocks;
    # the per-tensor variant tests each tensor in the chain.
    elementwise=lambda group: group["variant"] != "per-tensor",
    update_sums=UpdateSums(lambda group, states, totals: _finish_switch_test(group, states, *totals)),
    kernel_constants=_kernel_phase,
)
def swats_switch(update: Update, direction: Direction) -> Direction:
    """SWATS's step (lr inside): Adam's, testing the switch, until the switch; then SGD's with Lambda."""
    if update.group["variant"] != "per-tensor":
        return _switch_step(update, direction.numerator, update.state, slice(None))
    steps = [
        _switch_step(update, direction.numerator, update.state, slice(i, i + 1))
        for i in range(len(update.params))
    ]
    numerators = [tensor for step in steps for tensor in step.numerator]
    return Direction(numerators, scale=[step.scale for step in steps], lr_scaled=False)


def _switch_step(update: Update, all_grads: list, all_state: dict, part: slice) -> Direction:
    """The step of the tensors ``part`` that switch together (a whole group, or one tensor)."""
    beta1, beta2 = (float(beta) for beta in update.group["betas"])
    grads, state = all_grads[part], {name: values[part] for name, values in all_state.items()}
    if torch.compiler.is_compiling():
        return _compiled_switch_step(update, grads, state, update.step[part], beta1, beta2)
    lr, step, group = as_float(update.group["lr"]), update.step, update.group
    if state["phase"][0].item() == SGD_PHASE:
        trace_(state["momentum_buffer"], grads, beta1)
        sgd_lr = state["sgd_lr"][0].item() * lr / state["switch_lr"][0].item()
        return Direction(state["momentum_buffer"], scale=(1.0 - beta1) * sgd_lr, lr_scaled=False)
    scale = -lr * bias_correction(beta2, step) ** 0.5 / bias_correction(beta1, step)
    adam_step = _adam_step(state, grads, beta1, beta2, group["eps"], scale)
    if group["variant"] == "per-tensor":
        _test_switch(group, step, lr, state, *_dot_products(adam_step, grads))
    else:  # the whole group's test, once every bucket has stepped (_finish_switch_test)
        update.add_sums(_dot_products(adam_step, grads))
    return Direction(adam_step, scale=-1.0, lr_scaled=False)


def _adam_step(
    state: dict, grads: list, beta1: float, beta2: float, eps: float, scale: float | torch.Tensor
) -> list[torch.Tensor]:
    """The Adam phase's moments, updated in place, and its step ``p = scale * m / (sqrt(a) + eps)``."""
    ema_(state["exp_avg"], grads, beta1)
    if torch.compiler.is_compiling():
        # Out of place, then copied: in place, inductor (torch 2.13) stored the new moment, which the switch
        # test's dot products also read, in a temporary and copied it back in a loop of its own (4 x 25M
        # float32: 225 ms a step against 71).
        squares = torch._foreach_mul(state["exp_avg_sq"], beta2)
        torch._foreach_addcmul_(squares, grads, grads, value=1.0 - beta2)
        torch._foreach_copy_(state["exp_avg_sq"], squares)
    else:
        ema_of_squares_(state["exp_avg_sq"], grads, beta2)
    adam_step = torch._foreach_div(state["exp_avg"], root_plus_eps(state["exp_avg_sq"], eps))
    torch._foreach_mul_(adam_step, per_tensor(scale))
    return adam_step


def _dot_products(adam_step: list, grads: list) -> list[torch.Tensor]:
    """``p^T g`` and ``p^T p`` of the Adam step ``p`` over the tensors given, each tensor's in float64."""
    return [
        sum(torch.sum(p * g, dtype=torch.float64) for p, g in zip(adam_step, grads)),
        sum(torch.sum(p * p, dtype=torch.float64) for p in adam_step),
    ]


def _finish_switch_test(
    group: dict[str, Any], states: list[dict], step_dot_grad: torch.Tensor, step_dot_step: torch.Tensor
) -> None:
    """The "paper" group's switch test on its whole Adam step, after every bucket (and every part of the
    generated kernel) stepped and added its dot products (``UpdateSums``)."""
    columns = {name: [state[name] for state in states] for name in ("momentum_buffer", *_SWITCH_NAMES)}
    step = int(states[0]["step"].item())  # this step's count: the group steps as a whole
    _test_switch(group, step, as_float(group["lr"]), columns, step_dot_grad, step_dot_step)


_SWITCH_NAMES = tuple(declaration.name for declaration in SWITCH_STATE)


def _test_switch(
    group: dict[str, Any],
    step: int,
    lr: float,
    state: dict,
    step_dot_grad: torch.Tensor,
    step_dot_step: torch.Tensor,
) -> None:
    """Keskar & Socher's projected learning rate and switch test on an Adam step (Algorithm 1), given its
    ``p^T g`` and ``p^T p``, for the tensors whose switch state ``state`` holds (a group's, or one)."""
    if step_dot_grad == 0:
        return
    beta2 = float(group["betas"][1])
    projected_lr = (step_dot_step / -step_dot_grad).item()
    lambda_avg = beta2 * state["lambda_avg"][0].item() + (1.0 - beta2) * projected_lr
    corrected = lambda_avg / bias_correction(beta2, step)
    if group["variant"] == "per-tensor":
        tolerance = group["switch_rtol"] * abs(projected_lr)
        switch = step > 1 and corrected > 0 and abs(corrected - projected_lr) < tolerance
    else:
        switch = step > 1 and abs(corrected - projected_lr) < group["eps"]
    for index in range(len(state["phase"])):
        state["lambda_avg"][index].fill_(lambda_avg)
        if switch:
            state["phase"][index].fill_(SGD_PHASE)
            state["sgd_lr"][index].fill_(corrected)
            state["switch_step"][index].fill_(step)
            state["switch_lr"][index].fill_(lr)
            state["momentum_buffer"][index].zero_()


def _compiled_switch_step(
    update: Update, grads: list, state: dict, steps: torch.Tensor, beta1: float, beta2: float
) -> Direction:
    """:func:`_switch_step` of a compiled step, which reads no tensor on the host (a graph break each).

    The generated kernel is specialised on the part's phase (:func:`_kernel_phase`, read on the host
    before the call): the Adam phase's kernel reads and writes only the moments (one pass, the switch
    test's dot products in the same loop), the SGD phase's only the momentum buffer. A "paper" group's
    kernel returns its part's dot products, which the engine adds over the parts and tests on the host
    (:func:`_finish_switch_test`, as the eager step does); a "per-tensor" part tests each tensor here, on
    tensors. Elsewhere (the user's ``torch.compile`` of the step, a "per-tensor" part mid-switch) both
    phases and the test are computed and ``torch.where`` selects by phase, as torch's capturable
    optimizers select. A test on tensors does not zero the momentum buffer at the switch: that made
    every write of the step wait for the dot products (two passes over memory). The buffer is never
    written in the Adam phase, and the SGD step zeroes it at its first step instead. ``steps`` holds one
    count per tensor of the part; the part's tensors step together, so the first count is the part's.
    """
    step, lr = steps[0], step_scalar(update.group["lr"])
    phase = update.group.get(KERNEL_PHASE)
    if phase == SGD_PHASE:
        return Direction(_compiled_sgd_step(state, grads, step, beta1, lr), scale=-1.0, lr_scaled=False)
    scale = -lr * bias_correction(beta2, step) ** 0.5 / bias_correction(beta1, step)
    if phase == ADAM_PHASE:
        adam_step = _adam_step(state, grads, beta1, beta2, update.group["eps"], scale)
        if update.group["variant"] == "per-tensor":
            _compiled_switch_test(update, grads, state, adam_step, step, beta2, in_sgd=None)
        else:  # the dot products of this part, returned by the kernel and tested on the host
            update.add_sums(_dot_products(adam_step, grads))
        return Direction(adam_step, scale=-1.0, lr_scaled=False)
    in_sgd = state["phase"][0] == SGD_PHASE
    # What only one phase writes: the SGD phase's buffer, the Adam phase's moments.
    before = {name: [t.clone() for t in state[name]] for name in ("momentum_buffer", "exp_avg", "exp_avg_sq")}
    sgd_step = _compiled_sgd_step(state, grads, step, beta1, lr)
    adam_step = _adam_step(state, grads, beta1, beta2, update.group["eps"], scale)
    _compiled_switch_test(update, grads, state, adam_step, step, beta2, in_sgd)
    for name, old_values in before.items():
        keep = ~in_sgd if name == "momentum_buffer" else in_sgd
        # Multi-tensor copies (torch 2.13's dynamo can drop a per-tensor copy_ into state).
        kept = [torch.where(keep, old, new) for old, new in zip(old_values, state[name])]
        torch._foreach_copy_(state[name], kept)
    numerators = [torch.where(in_sgd, sgd, adam) for sgd, adam in zip(sgd_step, adam_step)]
    return Direction(numerators, scale=-1.0, lr_scaled=False)


def _compiled_sgd_step(
    state: dict, grads: list, step: torch.Tensor, beta1: float, lr: torch.Tensor
) -> list[torch.Tensor]:
    """The SGD phase's step ``-(1 - beta1) Lambda lr / lr_switch v`` with ``v <- beta1 v + g`` in
    place, ``v`` zeroed first at the first step after the switch."""
    buffers = state["momentum_buffer"]
    first = step == state["switch_step"][0] + 1
    torch._foreach_copy_(buffers, [torch.where(first, 0.0, buffer) for buffer in buffers])
    trace_(buffers, grads, beta1)
    return torch._foreach_mul(buffers, -(1.0 - beta1) * (state["sgd_lr"][0] * lr / state["switch_lr"][0]))


def _compiled_switch_test(
    update: Update,
    grads: list,
    state: dict,
    adam_step: list,
    step: torch.Tensor,
    beta2: float,
    in_sgd: torch.Tensor | None,
) -> None:
    """:func:`_test_switch` as tensors: taken where ``p^T g != 0`` (and not ``in_sgd``, if given)."""
    group, lr = update.group, step_scalar(update.group["lr"])
    step_dot_grad, step_dot_step = _dot_products(adam_step, grads)
    tested = (step_dot_grad != 0) if in_sgd is None else (step_dot_grad != 0) & ~in_sgd
    projected_lr = step_dot_step / -torch.where(tested, step_dot_grad, 1.0)
    lambda_avg = beta2 * state["lambda_avg"][0] + (1.0 - beta2) * projected_lr
    corrected = lambda_avg / bias_correction(beta2, step)
    if group["variant"] == "per-tensor":
        tolerance = group["switch_rtol"] * projected_lr.abs()
        passes = (corrected > 0) & ((corrected - projected_lr).abs() < tolerance)
    else:
        passes = (corrected - projected_lr).abs() < group["eps"]
    switch = tested & (step > 1) & passes
    # Each copy of lambda advances from its own value (they are equal): inductor (torch 2.13) compiles one
    # multi-tensor copy of a value read from the first copy into every copy so that the later copies read
    # the first one's new value, which advanced them twice.
    advanced = [beta2 * old + (1.0 - beta2) * projected_lr for old in state["lambda_avg"]]
    torch._foreach_copy_(
        state["lambda_avg"],
        [torch.where(tested, new, old) for new, old in zip(advanced, state["lambda_avg"])],
    )
    _select_(state["phase"], switch, SGD_PHASE)
    _select_(state["sgd_lr"], switch, corrected)
    _select_(state["switch_step"], switch, step)
    _select_(state["switch_lr"], switch, lr)


def _select_(scalars: list, condition: torch.Tensor, value: torch.Tensor | float) -> None:
    """Each float64 state scalar becomes ``value`` where ``condition`` holds (kept otherwise)."""
    chosen = [torch.where(condition, value, old) for old in scalars]
    torch._foreach_copy_(scalars, chosen)


class SWATS(RuleOptimizer):
    r"""SWATS (Keskar & Socher 2017): Adam until its projected SGD learning rate settles, then SGD.

    Adam phase (Algorithm 1 of the paper, step :math:`k`):

    .. math::

        m_k &= \beta_1 m_{k-1} + (1-\beta_1) g_k, \qquad a_k = \beta_2 a_{k-1} + (1-\beta_2) g_k^2 \\
        p_k &= -\alpha \frac{\sqrt{1-\beta_2^k}}{1-\beta_1^k} \frac{m_k}{\sqrt{a_k} + \epsilon},
              \qquad x_k = x_{k-1} + p_k \\
        \text{if } p_k^\top g_k \ne 0: \quad
        \gamma_k &= \frac{p_k^\top p_k}{-p_k^\top g_k}, \qquad
        \lambda_k = \beta_2 \lambda_{k-1} + (1-\beta_2)\gamma_k \\
        \text{switch when } k > 1 &\text{ and } |\lambda_k / (1-\beta_2^k) - \gamma_k| < \epsilon,
              \text{ with } \Lambda = \lambda_k / (1-\beta_2^k)

    SGD phase (from the step after the switch, ``momentum_buffer`` starting at 0):

    .. math::

        v_k = \beta_1 v_{k-1} + g_k, \qquad x_k = x_{k-1} - (1-\beta_1)\,\Lambda\, v_k

    The dot products run over all parameters of a param group and the whole group switches at once, as
    in the paper, where the switch is taken on the full parameter vector. State per parameter: ``step``,
    ``exp_avg`` (:math:`m`), ``exp_avg_sq`` (:math:`a`), ``momentum_buffer`` (:math:`v`), and the
    group's scalars copied into each parameter's state: ``phase`` (0 Adam, 1 SGD), ``lambda_avg``
    (:math:`\lambda`), ``sgd_lr`` (:math:`\Lambda`), ``switch_step`` (0 before the switch) and
    ``switch_lr`` (``lr`` at the switch): float64 scalars whatever the parameter dtype, kept float64 by
    ``load_state_dict``. Read the switch with :meth:`switch_steps` and :meth:`sgd_learning_rates`.

    Variants:
        - ``"paper"`` (default): the per-group switch and the absolute test above.
        - ``"per-tensor"``: our own variant: the test and the switch per parameter tensor, with the
          relative tolerance ``|Lambda - gamma| < switch_rtol * |gamma|`` and ``Lambda > 0``. Neither
          the paper's criterion nor the public implementations' (those switch per param group);
          :meth:`switch_steps` then reports one switch per tensor.

    Differences from the paper: weight decay (``weight_decay``, coupled L2, default 0) is an addition.
    After the switch the SGD step is :math:`\Lambda \cdot \text{lr}_k / \text{lr}_{switch}` so learning
    rate schedulers keep acting on the SGD phase (the paper decays :math:`\Lambda` with the same
    schedule in its experiments); with a constant ``lr`` this is the paper's step. torch has no SWATS.

    Every parameter in a group must share device and dtype and have a gradient at every step (the
    switch test is a function of the whole group); otherwise ``step`` raises ``ValueError``.

    Under ``torch.compile`` the step computes both phases and the switch test as tensors and selects with
    ``torch.where`` (no host read: no graph break, no recompile when the phase changes); the eager step
    branches on the host as before, so its results are unchanged bit for bit. With ``compiled=True`` the
    generated kernel is specialised on the phase, read on the host before each call (one entry per
    phase): the Adam phase is one pass over memory with the switch test's dot products in it (4 x 25M
    float32: as long as compiled Adam's step), the SGD phase one pass over the momentum buffer. A
    "paper" group's kernel is called in parts (a transformer's layers), each returning its dot
    products, and the switch test runs on the host on their sums, as in the eager step. The compiled
    forms that test on tensors (``torch.compile`` of the step, the "per-tensor" variant) zero the
    momentum buffer at the first SGD step rather than at the switch (it is zero through the Adam phase
    either way, unless a state_dict loaded a nonzero one).

    Search space: Adam's ranges (the SGD phase takes its rate from the Adam phase).

    References:
        Keskar & Socher, "Improving Generalization Performance by Switching from Adam to SGD", 2017,
        arXiv:1712.07628.
    """

    reference = "Keskar & Socher 2017 (arXiv:1712.07628)"
    variants = ("paper", "per-tensor")
    search_space = Adam.search_space
    chain = (swats_switch,)  # coupled decay, then Adam or SGD by the group's (or tensor's) phase
    weight_decay_placement = "coupled"
    signature = arguments(
        "lr betas eps weight_decay * switch_rtol maximize foreach differentiable variant",
        lr=1e-3,
        eps=1e-9,
    )

    def check_group(self, group: dict[str, Any]) -> None:
        """The per-tensor loop (``foreach=False``) cannot run the paper's whole-group switch test."""
        super().check_group(group)
        if group["variant"] == "paper" and group.get("foreach") is False:
            raise ValueError(
                "SWATS variant 'paper' tests the whole group at once: foreach must be None or True, "
                "got foreach=False (or pass variant='per-tensor')"
            )

    def step(self, closure: Any = None) -> Any:
        """One SWATS step; ``closure`` (optional) runs first, so its gradients are the ones checked."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group["variant"] == "paper" and group.get("foreach") is not False:
                with_grad = [p for p in group["params"] if p.grad is not None]
                if (
                    len(with_grad) != len(group["params"])
                    or len({(p.device, p.dtype) for p in with_grad}) > 1
                ):
                    raise ValueError(
                        "SWATS switches per param group: every parameter of a group needs a gradient at "
                        "every step and one device/dtype; split the parameters into groups accordingly"
                    )
            elif group["variant"] == "paper":  # foreach=False written into the group after check_group
                raise ValueError("SWATS variant 'paper' tests the whole group at once; use foreach=None")
            hyperparameters = [group["lr"], *group["betas"]]
            if group.get("differentiable") and any(is_graph_tensor(value) for value in hyperparameters):
                raise ValueError(
                    "SWATS(differentiable=True) cannot differentiate with respect to lr or betas: the switch "
                    "to SGD is a host-side decision on Adam's projected learning rate, and both phases read "
                    "lr and betas as floats, so their gradient would be 0; pass them as floats or tensors "
                    "that do not require grad (the step stays differentiable in the parameters)"
                )
        super().step()
        return loss

    def switch_steps(self) -> list[int | dict[int, int | None] | None]:
        """Per param group, the step at which it switched to SGD (``None`` while still in Adam).

        A ``"per-tensor"`` group switches tensor by tensor, so its entry is a dict from the index of
        each parameter in ``group["params"]`` (``group["param_names"]`` has the names, if given) to that
        tensor's switch step or ``None``.
        """
        return [self._switch_record(group, "switch_step", int) for group in self.param_groups]

    def sgd_learning_rates(self) -> list[float | dict[int, float | None] | None]:
        """Per param group, the SGD learning rate Lambda estimated at the switch (``None`` before).

        Shaped as :meth:`switch_steps`: a dict per parameter index for ``"per-tensor"`` groups.
        """
        return [self._switch_record(group, "sgd_lr", float) for group in self.param_groups]

    def _switch_record(self, group, name, convert):
        values = {}
        for index, param in enumerate(group["params"]):
            param_state = self.state.get(param)
            switched = bool(param_state) and param_state["phase"].item() == SGD_PHASE
            values[index] = convert(param_state[name].item()) if switched else None
        if group["variant"] == "per-tensor":
            return values
        # A "paper" group switches as a whole: every tensor holds the same value.
        return next((value for value in values.values() if value is not None), None)
