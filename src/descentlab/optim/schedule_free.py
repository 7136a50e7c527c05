r"""Schedule-Free SGD and AdamW (Defazio et al. 2024): the gradient at an interpolation of two sequences.

Both keep a base sequence :math:`z` and its weighted average :math:`x` and evaluate the gradient at
:math:`y = (1 - \beta) z + \beta x`. Between steps the parameters hold :math:`y` (train mode);
``optimizer.eval()`` puts :math:`x` in them and ``optimizer.train()`` puts :math:`y` back, exactly
(:math:`y` is recomputed from the stored :math:`z, x` with the kernel the step used). ``at_iterate()``
is the ``eval()``/``train()`` pair as a block, which is how the lab evaluates at :math:`x`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from descentlab.optim._engine import RuleOptimizer, apply_update
from descentlab.optim._rules import ema_of_squares_, lerp_, root_plus_eps
from descentlab.optim._transform import (
    Direction,
    Directions,
    EvaluationPoint,
    GroupState,
    Hyperparameter,
    State,
    Update,
    arguments,
    is_graph_tensor,
    step_scalar,
    transform,
)
from descentlab.optim._transforms import BETAS, EPS
from descentlab.optim._validation import CLOSED_UNIT_INTERVAL, NON_NEGATIVE, Integer
from descentlab.optim.search_space import Float, Int

AVERAGING = (
    Hyperparameter("warmup_steps", 0, Integer(0), annotation="int"),
    Hyperparameter("r", 0.0, NON_NEGATIVE),
    Hyperparameter("weight_lr_power", 2.0, NON_NEGATIVE),
)


def _warmup(group: dict[str, Any]) -> float:
    """``min(1, t / T_warmup)`` of the group's step ``t`` (1 without warmup)."""
    warmup = group["warmup_steps"]
    return min(1.0, group["k"] / warmup) if warmup > 0 else 1.0


def _beta2_correction(group: dict[str, Any]) -> float | Tensor:
    """``1 - beta2^t``; a 0-d tensor inside the generated kernel, where ``k`` is one (see _weight)."""
    return 1.0 - float(group["betas"][1]) ** step_scalar(group["k"])


def _sgd_step_size(group: dict[str, Any]) -> float:
    return float(group["lr"]) * _warmup(group)


def _adamw_step_size(group: dict[str, Any]) -> float:
    """Algorithm 1, line 8: ``gamma_t = lr sqrt(1 - beta2^t) min(1, t / T_warmup)`` (the paper); the
    authors' package (v1.3+) leaves the bias correction out of ``gamma_t`` and puts it under the root."""
    if group.get("variant", "paper") == "authors-code":
        return _sgd_step_size(group)
    return _sgd_step_size(group) * math.sqrt(_beta2_correction(group))


def _weight(group: dict[str, Any]) -> float | Tensor:
    """This step's weight in the average: ``t^r lr_max^weight_lr_power`` (eq. (23): ``gamma_t^2``).

    The group-level state is Python numbers, except inside the generated kernel (``compiled=True``),
    which takes them as float64 tensors so that advancing them recompiles nothing; ``step_scalar`` makes
    those 0-d and leaves numbers floats (the same float64 arithmetic either way).
    """
    k, lr_max = step_scalar(group["k"]), step_scalar(group["lr_max"])
    return k ** float(group["r"]) * lr_max ** float(group["weight_lr_power"])


def _average_weight(group: dict[str, Any], dtype: torch.dtype) -> float | list[Tensor]:
    """``c = w_t / sum_i w_i``, the weight of ``z`` in the new average (0 while the sum is 0: lr = 0 so
    far); inside the generated kernel a 0-d tensor of ``dtype`` (the lerp's), chosen without a host read.
    """
    weight, total = _weight(group), step_scalar(group["weight_sum"])
    if isinstance(total, Tensor):
        return torch.where(total > 0, weight / total, 0.0).to(dtype)
    return weight / total if total > 0 else 0.0


def _averaging_state(step_size: Callable[[dict[str, Any]], float]) -> tuple[GroupState, ...]:
    """The group-level state, advanced once per step in this order (each reads the ones before)."""
    return (
        GroupState("train_mode", lambda group: True),
        GroupState("k", lambda group: 0, lambda group: group["k"] + 1),
        GroupState("scheduled_lr", lambda group: 0.0, step_size),
        GroupState("lr_max", lambda group: 0.0, lambda group: max(group["lr_max"], group["scheduled_lr"])),
        GroupState("weight_sum", lambda group: 0.0, lambda group: group["weight_sum"] + _weight(group)),
    )


@transform(hyperparameters=AVERAGING, group_state=_averaging_state(_sgd_step_size))
def average_sgd(update: Update, direction: Direction) -> Direction:
    """Schedule-Free SGD's direction is the gradient at ``y`` (coupled decay included by the engine)."""
    return direction


@transform(
    hyperparameters=(BETAS, EPS, *AVERAGING),
    state=(State("exp_avg_sq"),),
    group_state=_averaging_state(_adamw_step_size),
)
def average_adamw(update: Update, direction: Direction) -> Direction:
    """``g / (sqrt(v) + eps) + lambda y`` (Algorithm 1, lines 7 and 9); ``"authors-code"`` divides by
    ``sqrt(v / (1 - beta2^t)) + eps``. The step size ``gamma_t`` is applied by the evaluation point."""
    squares = update.state["exp_avg_sq"]
    ema_of_squares_(squares, direction.numerator, float(update.group["betas"][1]))
    correction = _beta2_correction(update.group) if update.group.get("variant") == "authors-code" else 1.0
    numerator = torch._foreach_div(
        direction.numerator, root_plus_eps(squares, update.number("eps"), correction)
    )
    if update.number("weight_decay") != 0:  # decoupled, evaluated at y (line 9)
        torch._foreach_add_(numerator, update.params, alpha=update.number("weight_decay"))
    return Direction(numerator)


def interpolate_(points: list[Tensor], base: list[Tensor], average: list[Tensor], beta: float) -> None:
    """``y <- (1 - beta) z + beta x`` as ``lerp(z, x, beta)``: the one kernel of the step and of train()."""
    if torch.is_grad_enabled():  # a differentiable step: _foreach_copy_ has no derivative
        for point, value in zip(points, torch._foreach_lerp(base, average, beta)):
            point.copy_(value)
        return
    torch._foreach_copy_(points, base)
    torch._foreach_lerp_(points, average, beta)


def _clone(group: dict[str, Any], param: Tensor) -> Tensor:
    """``z_1 = x_1 = y_1``, not detached: a differentiable step reaches the start through them."""
    return param.clone(memory_format=torch.preserve_format)


def _interpolation(
    beta: Callable[[dict[str, Any]], float], *hyperparameters: Hyperparameter
) -> EvaluationPoint:
    """The evaluation point ``y`` for an interpolation weight read by ``beta(group)``."""

    def to_iterate(update: Update) -> None:
        """Nothing to move: the chain reads y (decay at y), and z, x live in the state."""

    def to_evaluation(update: Update, directions: Directions) -> Directions:
        group, base, average = update.group, update.state["z"], update.state["x"]
        assert isinstance(directions, Direction)
        apply_update(base, directions, group["scheduled_lr"])  # z <- z - gamma_t d
        lerp_(average, base, _average_weight(group, average[0].dtype))  # x <- (1 - c) x + c z
        interpolate_(update.params, base, average, beta(group))
        return None  # the parameters already hold the next y

    return EvaluationPoint(
        "schedule_free_interpolation",
        to_iterate,
        to_evaluation,
        hyperparameters,
        state=(State("z", _clone), State("x", _clone)),
    )


def _momentum(group: dict[str, Any]) -> float:
    return float(group["momentum"])


def _beta1(group: dict[str, Any]) -> float:
    return float(group["betas"][0])


class _ScheduleFree(RuleOptimizer):
    """What both Schedule-Free optimizers share: which point the parameters hold, and switching it."""

    beta: Callable[[dict[str, Any]], float]

    @torch.no_grad()
    def eval(self) -> None:
        """Put the average ``x`` in the parameters (for evaluating, saving a model, exporting)."""
        for group in self.param_groups:
            if group.get("train_mode", True):
                params, _, average = self._sequences(group)
                if params:
                    torch._foreach_copy_(params, average)
                group["train_mode"] = False

    @torch.no_grad()
    def train(self) -> None:
        """Put ``y = (1 - beta) z + beta x`` back in the parameters (bit for bit the point they held)."""
        for group in self.param_groups:
            if not group.get("train_mode", True):
                params, base, average = self._sequences(group)
                if params:
                    interpolate_(params, base, average, type(self).beta(group))
                group["train_mode"] = True

    @contextlib.contextmanager
    def at_iterate(self) -> Iterator[None]:
        """A block in which the parameters hold ``x`` (the lab's evaluation hook); ``y`` returns after."""
        switched = any(group.get("train_mode", True) for group in self.param_groups)
        self.eval()
        try:
            yield
        finally:
            if switched:
                self.train()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step at ``y``; refused in eval mode, where the parameters hold ``x``."""
        if not all(group.get("train_mode", True) for group in self.param_groups):
            raise RuntimeError(
                f"{type(self).__name__}.step() was called in eval mode: the parameters hold the average x, "
                "not the point y where gradients belong; call optimizer.train() before training (and "
                "optimizer.eval() before evaluating)"
            )
        for group in self.param_groups:
            _refuse_graph_hyperparameters(type(self).__name__, group)
        if _compile_disabled_step is None:  # an instance made without construct (unpickled): built here
            _disable_compile_of_step()
        return _compile_disabled_step(self, closure)

    def construct(self, params: Any, defaults: dict[str, Any]) -> None:
        """The engine's construction, after building the compile-disabled step (eagerly, here)."""
        _disable_compile_of_step()
        super().construct(params, defaults)

    def _sequences(self, group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        """The params with state and their ``z``, ``x`` (complex ones as real views)."""
        triples = [
            (param, self.state[param]["z"], self.state[param]["x"])
            for param in group["params"]
            if "z" in self.state.get(param, {})
        ]
        return tuple(
            [torch.view_as_real(t) if torch.is_complex(t) else t for t in column] for column in zip(*triples)
        ) or ([], [], [])


def _eager_step(optimizer: RuleOptimizer, closure: Callable[[], Any] | None) -> Any:
    """The engine's step, always eager: a break under ``torch.compile``, but the right result.

    The group-level state advances in ``_init_group``, which dynamo runs eagerly while it traces the rest
    against its own earlier view of the group: the first compiled step fails inside dynamo (a ``KeyError``
    for the state not yet created), and frames compiled afterwards gave parameters 2-4% away from the
    eager step's after 6 steps (benchmarks/compile_counts.py, before this fallback).
    """
    return RuleOptimizer.step(optimizer, closure)


# _eager_step under torch.compiler.disable, built by the first construction (or step) and not at import:
# disable() imports dynamo (1.2-1.6 s), which a process that never compiles should not pay. The step reads
# this global, which dynamo sees as a disabled function (a call of disable() while tracing would break the
# graph once more).
_compile_disabled_step: Callable[[RuleOptimizer, Callable[[], Any] | None], Any] | None = None


def _disable_compile_of_step() -> None:
    global _compile_disabled_step
    if _compile_disabled_step is None:
        _compile_disabled_step = torch.compiler.disable(
            _eager_step,
            reason="Schedule-Free's group-level state (k, scheduled_lr, lr_max, weight_sum) advances on "
            "the host",
        )


def _refuse_graph_hyperparameters(name: str, group: dict[str, Any]) -> None:
    """A differentiable step cannot differentiate with respect to lr, betas or momentum: refuse them.

    They reach the step through the group-level state (``scheduled_lr``, ``lr_max``, ``weight_sum``, the
    averaging weights), which holds Python numbers advanced once per step, so a tensor that requires
    grad would be read as a float and its gradient would silently be 0.
    """
    if not group.get("differentiable"):
        return
    for key in ("lr", "betas", "momentum", "weight_decay"):
        values = group.get(key)
        if any(is_graph_tensor(value) for value in (values if isinstance(values, tuple) else (values,))):
            raise ValueError(
                f"{name}(differentiable=True) differentiates with respect to the starting point only: "
                f"{key} is a tensor that requires grad, but it enters the step through the group's "
                "Python-number state (scheduled_lr, lr_max, weight_sum), so its gradient would be 0; "
                f"pass {key} as a float or a tensor that does not require grad"
            )


class ScheduleFreeSGD(_ScheduleFree):
    r"""Schedule-Free SGD: SGD on :math:`z`, an online average :math:`x`, gradients at their interpolation.

    Defazio et al. 2024, eqs. (3)-(5), with the warmup and the weights of eq. (23) that sec. 4.3 gives
    for both Schedule-Free methods:

    .. math::

        y_t &= (1 - \beta) z_t + \beta x_t \\
        z_{t+1} &= z_t - \gamma_t (\nabla f(y_t) + \lambda y_t), \qquad
            \gamma_t = \gamma \min(1, t / T_{warmup}) \\
        c_{t+1} &= \frac{w_t}{\sum_{i=1}^t w_i}, \qquad w_t = t^r\, (\max_{i \le t} \gamma_i)^{p} \\
        x_{t+1} &= (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \qquad z_1 = x_1

    with ``lr`` :math:`\gamma`, ``momentum`` :math:`\beta`, ``warmup_steps`` :math:`T_{warmup}` (0: none),
    ``r``, ``weight_lr_power`` :math:`p` and ``weight_decay`` :math:`\lambda` (L2 at :math:`y`, the
    paper's choice in sec. 4.3). With :math:`r = 0, p = 2` and a non-decreasing :math:`\gamma_t` (warmup,
    then constant) :math:`w_t = \gamma_t^2`, eq. (23); without warmup :math:`c_{t+1} = 1/t`.
    :math:`\beta = 0` is Polyak averaging (gradients at :math:`z`), :math:`\beta = 1` primal averaging
    (gradients at :math:`x`).

    **Which point the parameters hold.** During training the parameters hold :math:`y` (so
    ``loss.backward()`` gives :math:`\nabla f(y_t)`); the state holds ``z`` and ``x``, and the group holds
    ``k`` (:math:`t`), ``scheduled_lr`` (:math:`\gamma_t`), ``lr_max``, ``weight_sum`` and ``train_mode``,
    so ``state_dict()`` carries everything and a resumed run continues bit for bit. Call
    ``optimizer.eval()`` wherever you call ``model.eval()`` (and before saving the model): the
    parameters then hold the average :math:`x`, the point the paper's guarantees are about; call
    ``optimizer.train()`` before training again. ``step()`` in eval mode raises a ``RuntimeError``.
    ``with optimizer.at_iterate():`` does the pair (the lab evaluates there). For BatchNorm, recompute
    the running statistics at :math:`x` (the authors' README: a few forward passes in
    ``model.train()`` inside ``eval()``).

    Differences from the authors' package (facebookresearch/schedule_free, ``SGDScheduleFree``): the
    same update, in another form. Theirs stores only ``z`` and reconstructs :math:`x` on ``eval()`` as
    ``lerp(y, z, 1 - 1/beta)`` (so ``eval(); train()`` returns :math:`y` only up to rounding, and
    :math:`0 < \beta < 1` is required); ours stores ``z`` and ``x`` (one more buffer per parameter), so
    :math:`x` is exact, the round trip is exact and :math:`\beta \in [0, 1]`. Theirs starts in eval mode
    (``train()`` must be called before the first step); ours starts in train mode (before the first step
    :math:`x = y = z`). Defaults are theirs: ``lr=1.0``, ``momentum=0.9``, ``warmup_steps=0``, ``r=0``,
    ``weight_lr_power=2``. Differences from the paper (tests/reference/schedule_free.py is written from
    it): eq. (23) gives :math:`c_{t+1} = 1/t` without warmup where the text under eq. (5) writes
    :math:`1/(t+1)`; the paper follows eq. (23) in its experiments and notes the shift by one (:math:`z_1`
    leaves the average at the first step). After 100 steps (lr 1e-3, momentum 0.9, the test problems)
    the iterates of the two weightings differ by 5.9e-4 (Rosenbrock), 2.2e-4 (bowl) and 1.1e-3
    (separable quartic) relative to their size. :math:`w_t` uses :math:`\max_{i\le t}\gamma_i` (the
    authors' ``lr_max``) where the paper writes :math:`\gamma_t^2`; they differ only if a scheduler
    lowers ``lr`` (the paper needs none). ``r`` and ``weight_lr_power`` are the authors' additions (an
    ordinary power :math:`t^r`; the paper only remarks, at eq. (20), that factorial-power weights fit
    its theory). No torch.optim class exists; ``maximize``, ``foreach`` and ``differentiable`` are torch's
    flags (a differentiable step reaches the start through :math:`z_1 = x_1`; ``lr`` is read as a float).
    Like Nesterov's look-ahead, anything that edits the parameters between steps (a max-norm constraint)
    edits :math:`y` only, not :math:`z` or :math:`x`.

    Example:
        >>> opt = ScheduleFreeSGD(model.parameters(), lr=1.0, momentum=0.9)  # doctest: +SKIP
        >>> opt.eval(); validation_loss = evaluate(model); opt.train()  # doctest: +SKIP

    Search space: lr (log; the authors suggest 10-50x the usual SGD rate), momentum (log1m), warmup.

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled", NeurIPS 2024,
        https://arxiv.org/abs/2405.15682. Authors' code: https://github.com/facebookresearch/schedule_free.
    """

    reference = "Defazio et al. 2024, The Road Less Scheduled (arXiv:2405.15682), eqs. 3-5"
    search_space = (
        Float("lr", 1e-3, 100.0, "log"),
        Float("momentum", 0.5, 0.99, "log1m"),
        Int("warmup_steps", 0, 100),
    )
    beta = staticmethod(_momentum)
    chain = (average_sgd,)
    evaluation_point = _interpolation(_momentum, Hyperparameter("momentum", 0.9, CLOSED_UNIT_INTERVAL))
    weight_decay_placement = "coupled"
    signature = arguments(
        "lr momentum weight_decay warmup_steps r weight_lr_power * maximize foreach differentiable",
        lr=1.0,
        momentum=0.9,
        weight_decay=0.0,
    )


class ScheduleFreeAdamW(_ScheduleFree):
    r"""Schedule-Free AdamW: Algorithm 1 of Defazio et al. 2024 (and the authors' current form).

    Algorithm 1 ("Schedule-Free AdamW"), lines 5-11 (line 8 is also sec. 4.3's warmup, line 10 eq. (23)):

    .. math::

        y_t &= (1 - \beta_1) z_t + \beta_1 x_t, \qquad g_t = \nabla f(y_t) \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \gamma_t &= \gamma \sqrt{1 - \beta_2^t}\, \min(1, t / T_{warmup}) \\
        z_{t+1} &= z_t - \gamma_t\, g_t / (\sqrt{v_t} + \epsilon) - \gamma_t \lambda y_t \\
        c_{t+1} &= \gamma_t^2 / \textstyle\sum_{i=1}^t \gamma_i^2, \qquad
            x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}

    (``lr`` :math:`\gamma`, ``betas`` :math:`(\beta_1, \beta_2)`, ``eps``, ``weight_decay`` :math:`\lambda`
    decoupled and evaluated at :math:`y`, ``warmup_steps``). As in :class:`ScheduleFreeSGD` the weight is
    generalised to :math:`w_t = t^r (\max_{i\le t}\gamma_i)^p` (``r``, ``weight_lr_power``; equal to
    :math:`\gamma_t^2` at the defaults, since :math:`\gamma_t` does not decrease), the parameters hold
    :math:`y` in train mode and :math:`x` after ``eval()``, and the state is ``z``, ``x``, ``exp_avg_sq``
    plus the group's ``k``, ``scheduled_lr``, ``lr_max``, ``weight_sum``, ``train_mode`` (see there for
    ``train()`` / ``eval()`` / ``at_iterate()``, which you must call).

    Variants:
        - ``"paper"`` (default): Algorithm 1 as above, line for line (tests/reference/schedule_free.py
          is written from it); also the authors' ``AdamWScheduleFreePaper`` ("the version used in the
          published experiments").
        - ``"authors-code"``: the authors' ``AdamWScheduleFree`` since v1.3: the bias correction moves from
          :math:`\gamma_t` under the root, :math:`\gamma_t = \gamma\min(1, t/T_{warmup})`,
          :math:`z_{t+1} = z_t - \gamma_t (g_t / (\sqrt{v_t / (1 - \beta_2^t)} + \epsilon) + \lambda y_t)`,
          and the weights use that :math:`\gamma_t`. The step direction is the paper's with eps
          :math:`\sqrt{1-\beta_2^t}` times smaller, but at :math:`\beta_2 = 0.999` the decay is
          :math:`1/\sqrt{1-\beta_2^t}` = 31.6x (t = 1), 10.0x (t = 10), 3.24x (t = 100), 1.26x (t = 1000)
          stronger than the paper's, and the average weights early iterates more: without warmup
          :math:`c_{t+1} = 1/t` there against :math:`(1-\beta_2^t)/\sum_{i\le t}(1-\beta_2^i)` = 0.182
          (t = 10), 0.0195 (t = 100), 0.00172 (t = 1000) in the paper (1/t: 0.1, 0.01, 0.001); the paper
          itself warns that folding the correction into :math:`\gamma_t` changes the early decay (sec.
          4.3). After 100 steps at the defaults (lr 2.5e-3) the iterates of the two variants differ by
          1.3e-2 (Rosenbrock), 7.1e-3 (bowl) and 2.8e-2 (separable quartic) relative to their size;
          with ``weight_decay=0.05`` by 1.4e-2, 3.5e-3, 2.4e-2; with lr 1e-2, decay 0.05 and 10 warmup
          steps by 1.8e-2, 1.1e-2, 7.3e-2.

    Differences from the authors' package besides the variants: as for :class:`ScheduleFreeSGD` (``z`` and
    ``x`` stored, exact round trip, train mode at the start, :math:`\beta_1 \in [0, 1)`); the bias
    correction and warmup use the group's step count ``k`` for every parameter, as theirs do; their
    ``inner_momentum`` (v1.4, off by default) is not offered. Defaults are theirs (``lr=0.0025``,
    ``betas=(0.9, 0.999)``, ``eps=1e-8``, ``weight_decay=0``, ``warmup_steps=0``, ``r=0``,
    ``weight_lr_power=2``); the paper recommends warmup. No torch.optim class exists.

    Example:
        >>> opt = ScheduleFreeAdamW(model.parameters(), lr=2.5e-3, warmup_steps=100)  # doctest: +SKIP
        >>> with opt.at_iterate():  # doctest: +SKIP
        ...     validation_loss = evaluate(model)

    Search space: lr (log), betas (log1m), weight_decay (log), warmup_steps.

    References:
        Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky, "The Road Less Scheduled", NeurIPS 2024,
        https://arxiv.org/abs/2405.15682 (Algorithm 1). Code: https://github.com/facebookresearch/schedule_free.
    """

    reference = "Defazio et al. 2024, The Road Less Scheduled (arXiv:2405.15682), Alg. 1"
    variants = ("paper", "authors-code")
    search_space = (
        Float("lr", 1e-5, 1.0, "log"),
        Float("betas[0]", 0.5, 0.99, "log1m"),
        Float("betas[1]", 0.9, 0.9999, "log1m"),
        Float("weight_decay", 1e-5, 0.1, "log"),
        Int("warmup_steps", 0, 100),
    )
    beta = staticmethod(_beta1)
    chain = (average_adamw,)
    evaluation_point = _interpolation(_beta1)
    signature = arguments(
        "lr betas eps weight_decay warmup_steps r weight_lr_power * maximize foreach differentiable variant",
        lr=2.5e-3,
        weight_decay=0.0,
    )
