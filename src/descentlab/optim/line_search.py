"""Gradient descent with a line search along the negative gradient (golden section, Armijo, Wolfe)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from descentlab.optim._engine import as_float
from descentlab.optim._validation import (
    OPEN_UNIT_INTERVAL,
    POSITIVE,
    Integer,
    ValidatedOptimizer,
    hyperparameter_checks,
)
from descentlab.optim.search_space import Float

METHODS = ("golden", "armijo", "strong-wolfe")
GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...: each golden-section iteration keeps this fraction


def armijo_backtracking(
    value_at: Callable[[float], float],
    value0: float,
    slope: float,
    *,
    initial_step: float,
    c1: float,
    shrink: float,
    max_evaluations: int,
) -> float:
    r"""Backtracking line search (Nocedal & Wright 2006, Algorithm 3.1) along a descent direction :math:`d`.

    Tries :math:`\alpha = \alpha_0, \rho\alpha_0, \rho^2\alpha_0, \dots` and returns the first
    :math:`\alpha` with the sufficient-decrease (Armijo) condition
    :math:`h(\alpha) \le h(0) + c_1 \alpha\, \nabla L^\top d`, where :math:`h(\alpha) = L(\theta + \alpha d)`.

    Args:
        value_at: :math:`h`, the loss at step length :math:`\alpha` along the direction.
        value0: :math:`h(0)`.
        slope: :math:`h'(0) = \nabla L^\top d` (negative for a descent direction).
        initial_step: :math:`\alpha_0`.
        c1: the sufficient-decrease constant :math:`c_1 \in (0, 1)`.
        shrink: the contraction factor :math:`\rho \in (0, 1)`.
        max_evaluations: the most values of :math:`h` to try.

    Returns:
        The accepted :math:`\alpha`, or 0.0 when none of ``max_evaluations`` trials was accepted.
    """
    alpha = initial_step
    for _ in range(max_evaluations):
        if value_at(alpha) <= value0 + c1 * alpha * slope:
            return alpha
        alpha *= shrink
    return 0.0  # no acceptable step within the budget: stay (the next step sees the same point)


@dataclass
class LineSearchRecord:
    r"""What one :class:`LineSearchGD` step tried, in evaluation order (``optimizer.last_search``).

    Step sizes :math:`\alpha` are lengths along :math:`d = -\nabla L(\theta)` (not multiples of
    ``lr``), so the trial point of ``trial_steps[i]`` is :math:`\theta + \alpha_i d`.

    Attributes:
        method: ``"golden"``, ``"armijo"`` or ``"strong-wolfe"``.
        initial_step: ``lr * max_step``, the first trial (Armijo, Wolfe) or the initial bracket end (golden).
        loss_before: :math:`h(0) = L(\theta)`, the loss the step's first closure call returned.
        slope: :math:`h'(0) = -\|\nabla L(\theta)\|^2`.
        trial_steps: every :math:`\alpha` at which the loss was evaluated.
        trial_losses: :math:`h(\alpha)` at each of ``trial_steps``.
        trial_slopes: :math:`h'(\alpha)` where the method needed it (strong Wolfe), NaN elsewhere.
        brackets: golden section only: the bracket ``(a, b, c, d)`` (``a < b < c < d``, ``b`` and ``c`` the
            interior points) when the section phase starts and after each reduction; the chosen step is
            the midpoint of ``a`` and ``d`` of the last one. The doubling phase before it shows only in
            the trials. Empty for the other methods.
        chosen_step: the accepted :math:`\alpha` (0.0 when no step was taken).
    """

    method: str
    initial_step: float
    loss_before: float
    slope: float
    trial_steps: list[float] = field(default_factory=list)
    trial_losses: list[float] = field(default_factory=list)
    trial_slopes: list[float] = field(default_factory=list)
    brackets: list[tuple[float, float, float, float]] = field(default_factory=list)
    chosen_step: float = 0.0


_RECORD = {"step_sizes": [], "last_step_size": 0.0, "last_evaluations": 0, "last_search": None}
"""LineSearchGD's record of past steps (attributes), with their values before the first step."""


def _real_views(tensors: list[Tensor]) -> list[Tensor]:
    return [torch.view_as_real(t) if torch.is_complex(t) else t for t in tensors]


def _flat_float64(tensors: list[Tensor]) -> Tensor:
    """All ``tensors`` as one float64 vector: slopes are accumulated in float64 whatever the dtypes."""
    return torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])


class LineSearchGD(ValidatedOptimizer):
    r"""Gradient descent whose step length is chosen by a line search along :math:`d = -\nabla L`.

    Each ``step(closure)`` computes :math:`g = \nabla L(\theta)` and moves to

    .. math::

        \theta \leftarrow \theta + \alpha^\star d, \qquad d = -g, \qquad
        \alpha^\star \approx \arg\min_{\alpha \ge 0} h(\alpha), \quad h(\alpha) = L(\theta + \alpha d)

    with :math:`\alpha^\star` chosen by ``method``, starting from :math:`\alpha_0 = \text{lr} \cdot
    \text{max\_step}`:

    - ``"golden"``: the bracketing search of Prince, *Understanding Deep Learning*, fig. 6.10:
      keep an interval :math:`[a, d]` (initially :math:`[0, \alpha_0]`), evaluate two interior points
      :math:`b < c` at golden-section spacing, drop :math:`[c, d]` if :math:`h(b) < h(c)` else
      :math:`[a, b]`, until the interval is shorter than ``tolerance``; :math:`\alpha` is its midpoint.
      When the minimum sits at the right end the interval is doubled first (up to
      ``max_expansions`` times), so the minimiser need not lie in the first bracket.
    - ``"armijo"``: backtracking from :math:`\alpha_0`, shrinking by ``shrink`` until
      :math:`L(\theta + \alpha d) \le L(\theta) + c_1 \alpha\, g^\top d` (Nocedal & Wright, Alg. 3.1).
    - ``"strong-wolfe"``: a step satisfying the strong Wolfe conditions with :math:`c_1, c_2`, first
      trial :math:`\alpha_0`, doubling (Nocedal & Wright, Algorithms 3.5-3.6, bisection in the zoom).

    ``lr`` (param-group key, default 1, any value >= 0) scales only :math:`\alpha_0`: the first
    trial step (Armijo, Wolfe) or the initial bracket (golden). ``tolerance`` stays absolute, and the
    golden search still doubles a bracket that is too short, so ``lr`` is the knob torch schedulers
    and LR monitors turn (as for ``torch.optim.LBFGS``) without capping the step; ``lr = 1`` is the
    search without it, and ``lr = 0`` takes no step and evaluates nothing.

    Protocol: ``closure()`` must zero the gradients, compute the loss, call ``backward()`` and return
    the loss (as for ``torch.optim.LBFGS``); it is called several times per step. Instrumentation:
    ``last_step_size`` (the chosen :math:`\alpha`), ``step_sizes`` (every chosen :math:`\alpha`, one per
    step), ``last_evaluations`` (loss evaluations of the last step after the first) and
    ``last_search``, a :class:`LineSearchRecord` of the last step's trial points (``None`` before the
    first step). All parameters form one search vector (one param group). ``step_sizes`` is saved
    in ``state_dict()["step_sizes"]`` and restored by ``load_state_dict``, so a trainer's checkpoint
    resumes it.

    Numerics: parameters keep their dtype, device and strides (float32 stays float32, transposed views
    work): each trial point :math:`\theta + \alpha d` is computed per parameter in its own dtype and
    written in place. Only the slopes :math:`g^\top d` are accumulated in float64. Complex parameters
    are searched as real pairs (:math:`\mathbb{R}^{2n}`), as the engine treats them. torch has no
    line-search gradient descent.

    Search space: lr (log), the scale of the first trial step.

    References:
        Prince, *Understanding Deep Learning*, MIT Press 2023, sec. 6.1.2 and fig. 6.10.
        Nocedal & Wright, *Numerical Optimization*, 2nd ed., Springer 2006, ch. 3.
    """

    reference = "Prince 2023 (UDL fig. 6.10); Nocedal & Wright 2006 ch. 3"
    step_protocol = "closure"  # see RuleOptimizer.step_protocol
    variants = METHODS
    search_space = (Float("lr", 1e-3, 10.0, "log"),)
    hyperparameters = hyperparameter_checks(
        max_step=POSITIVE,
        tolerance=POSITIVE,
        c1=OPEN_UNIT_INTERVAL,
        c2=OPEN_UNIT_INTERVAL,
        shrink=OPEN_UNIT_INTERVAL,
        max_evaluations=Integer(2),
        max_expansions=Integer(0),
    )

    def __init__(
        self,
        params: Any,
        method: str = "golden",
        max_step: float = 1.0,
        tolerance: float = 1e-8,
        *,
        lr: float | Tensor = 1.0,
        c1: float = 1e-4,
        c2: float = 0.9,
        shrink: float = 0.5,
        max_evaluations: int = 100,
        max_expansions: int = 20,
    ) -> None:
        defaults = dict(
            lr=lr,
            method=method,
            max_step=max_step,
            tolerance=tolerance,
            c1=c1,
            c2=c2,
            shrink=shrink,
            max_evaluations=max_evaluations,
            max_expansions=max_expansions,
        )
        super().__init__(params, defaults)
        self.step_sizes: list[float] = []
        self.last_step_size = 0.0
        self.last_evaluations = 0
        self.last_search: LineSearchRecord | None = None

    def check_group(self, group: dict[str, Any]) -> None:
        """The method's name, the Wolfe ordering of c1 and c2, and a finite first step."""
        if group["method"] not in METHODS:
            raise ValueError(
                f"unknown line-search method {group['method']!r}; choose one of {', '.join(METHODS)}"
            )
        c1, c2 = group["c1"], group["c2"]
        if not c1 < c2:
            raise ValueError(f"need 0 < c1 < c2 < 1 for the Wolfe conditions, got c1={c1}, c2={c2}")
        if not math.isfinite(as_float(group["lr"]) * float(group["max_step"])):
            raise ValueError(
                f"lr * max_step must be finite, got lr={group['lr']!r}, max_step={group['max_step']!r}"
            )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add the (only) param group; a second one is refused, since the search is along one vector."""
        if self.param_groups:
            raise ValueError("LineSearchGD searches along one vector: pass a single param group")
        super().add_param_group(param_group)

    def __getstate__(self) -> dict[str, Any]:
        # torch pickles (and deep-copies) only defaults, state and param_groups; keep the step record.
        return {**super().__getstate__(), **{name: self.__dict__[name] for name in _RECORD}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for name, empty in _RECORD.items():  # pickled without them (before __getstate__ kept them)
            self.__dict__.setdefault(name, copy.copy(empty))
        for group in self.param_groups:
            group.setdefault("lr", 1.0)  # saved before LineSearchGD had an lr: lr = 1 is that search

    def state_dict(self) -> dict[str, Any]:
        """torch's ``state_dict`` plus ``"step_sizes"``, every accepted step size so far."""
        state = super().state_dict()
        state["step_sizes"] = list(self.step_sizes)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; one saved without ``"step_sizes"`` starts an empty history."""
        super().load_state_dict(state_dict)
        self.step_sizes = [float(alpha) for alpha in state_dict.get("step_sizes", ())]
        self.last_step_size = self.step_sizes[-1] if self.step_sizes else 0.0

    def _params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]

    def _gradients(self) -> list[Tensor]:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._params()]
        if any(grad.is_sparse for grad in grads):
            raise RuntimeError(
                "LineSearchGD does not support sparse gradients (its search direction is one dense "
                "vector); pass sparse=False to nn.Embedding, or use SGD or Adagrad, which support them"
            )
        return grads

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """Search along the negative gradient and move there; returns the loss before the step."""
        if closure is None:
            raise ValueError("LineSearchGD.step needs a closure that computes the loss and calls backward()")
        group = self.param_groups[0]
        with torch.enable_grad():
            loss = closure()
        with torch.no_grad():
            targets = _real_views(self._params())
            start = [t.detach().clone() for t in targets]
            direction = [-g.detach() for g in _real_views(self._gradients())]
        flat_direction = _flat_float64(direction)
        slope = float(-flat_direction @ flat_direction)
        initial_step = as_float(group["lr"]) * float(group["max_step"])
        record = LineSearchRecord(group["method"], initial_step, loss.detach().item(), slope)

        def move_to(alpha: float) -> None:
            with torch.no_grad():
                for target, origin, step in zip(targets, start, direction):
                    target.copy_(origin + alpha * step)

        def evaluate(alpha: float, need_gradient: bool = False) -> tuple[float, float]:
            move_to(alpha)
            with torch.enable_grad():
                value = closure().detach().item()
            derivative = math.nan
            if need_gradient:
                derivative = float(_flat_float64(_real_views(self._gradients())) @ flat_direction)
            record.trial_steps.append(alpha)
            record.trial_losses.append(value)
            record.trial_slopes.append(derivative)
            return value, derivative

        if slope == 0.0 or initial_step == 0.0:
            alpha = 0.0
        elif group["method"] == "golden":
            alpha = self._golden(evaluate, group, initial_step, record.brackets)
        elif group["method"] == "armijo":
            alpha = self._armijo(evaluate, record.loss_before, slope, group, initial_step)
        else:
            alpha = self._strong_wolfe(evaluate, record.loss_before, slope, group, initial_step)
        move_to(alpha)
        record.chosen_step = alpha
        self.last_search = record
        self.last_evaluations = len(record.trial_steps)
        self.last_step_size = alpha
        self.step_sizes.append(alpha)
        return loss

    @staticmethod
    def _golden(evaluate, group, initial_step: float, brackets: list) -> float:
        low, high = 0.0, initial_step
        budget = group["max_evaluations"]
        for _ in range(group["max_expansions"]):
            # Expand while the far end is still lower than an interior point: the minimum lies beyond.
            if evaluate(high)[0] < evaluate(GOLDEN * high)[0]:
                low, high = GOLDEN * high, 2.0 * high
            else:
                break
        b, c = high - GOLDEN * (high - low), low + GOLDEN * (high - low)
        h_b, h_c = evaluate(b)[0], evaluate(c)[0]
        brackets.append((low, b, c, high))
        while high - low > group["tolerance"] and budget > 0:
            budget -= 1
            if h_b < h_c:  # the minimum is in [low, c]
                high, c, h_c = c, b, h_b
                b = high - GOLDEN * (high - low)
                h_b = evaluate(b)[0]
            else:  # the minimum is in [b, high]
                low, b, h_b = b, c, h_c
                c = low + GOLDEN * (high - low)
                h_c = evaluate(c)[0]
            brackets.append((low, b, c, high))
        return 0.5 * (low + high)

    @staticmethod
    def _armijo(evaluate, value0: float, slope: float, group, initial_step: float) -> float:
        return armijo_backtracking(
            lambda alpha: evaluate(alpha)[0],
            value0,
            slope,
            initial_step=initial_step,
            c1=group["c1"],
            shrink=group["shrink"],
            max_evaluations=group["max_evaluations"],
        )

    @staticmethod
    def _strong_wolfe(evaluate, value0: float, slope0: float, group, initial_step: float) -> float:
        c1, c2 = group["c1"], group["c2"]
        budget = group["max_evaluations"]
        previous_alpha, previous_value = 0.0, value0
        alpha = initial_step

        def zoom(low, value_low, high) -> float:
            for _ in range(budget):
                middle = 0.5 * (low + high)
                value, derivative = evaluate(middle, need_gradient=True)
                if value > value0 + c1 * middle * slope0 or value >= value_low:
                    high = middle
                else:
                    if abs(derivative) <= -c2 * slope0:
                        return middle
                    if derivative * (high - low) >= 0:
                        high = low
                    low, value_low = middle, value
            return low

        for iteration in range(budget):
            value, derivative = evaluate(alpha, need_gradient=True)
            if value > value0 + c1 * alpha * slope0 or (iteration > 0 and value >= previous_value):
                return zoom(previous_alpha, previous_value, alpha)
            if abs(derivative) <= -c2 * slope0:
                return alpha
            if derivative >= 0:
                return zoom(alpha, value, previous_alpha)
            previous_alpha, previous_value, alpha = alpha, value, 2.0 * alpha
        return previous_alpha
