"""Gradient descent with a line search along the negative gradient (golden section, Armijo, Wolfe)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils import parameters_to_vector, vector_to_parameters
from torch.optim import Optimizer

from descentlab.optim._validation import check_positive, check_unit_interval

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


class LineSearchGD(Optimizer):
    r"""Gradient descent whose step length is chosen by a line search along :math:`d = -\nabla L`.

    Each ``step(closure)`` computes :math:`g = \nabla L(\theta)` and moves to

    .. math::

        \theta \leftarrow \theta + \alpha^\star d, \qquad d = -g, \qquad
        \alpha^\star \approx \arg\min_{\alpha \ge 0} h(\alpha), \quad h(\alpha) = L(\theta + \alpha d)

    with :math:`\alpha^\star` chosen by ``method``:

    - ``"golden"``: the bracketing search of Prince, *Understanding Deep Learning*, fig. 6.10:
      keep an interval :math:`[a, d]` (initially ``[0, max_step]``), evaluate two interior points
      :math:`b < c` at golden-section spacing, drop :math:`[c, d]` if :math:`h(b) < h(c)` else
      :math:`[a, b]`, until the interval is shorter than ``tolerance``; :math:`\alpha` is its midpoint.
      When the minimum sits at the right end the interval is doubled first (up to
      ``max_expansions`` times), so the minimiser need not lie in the first bracket.
    - ``"armijo"``: backtracking from ``max_step``, shrinking by ``shrink`` until
      :math:`L(\theta + \alpha d) \le L(\theta) + c_1 \alpha\, g^\top d` (Nocedal & Wright, Alg. 3.1).
    - ``"strong-wolfe"``: a step satisfying the strong Wolfe conditions with :math:`c_1, c_2`
      (Nocedal & Wright, Algorithms 3.5-3.6, with bisection in the zoom phase).

    Protocol: ``closure()`` must zero the gradients, compute the loss, call ``backward()`` and return
    the loss (as for ``torch.optim.LBFGS``); it is called several times per step. The chosen step
    length is ``optimizer.last_step_size`` and every one is kept in ``optimizer.step_sizes``; the
    number of loss evaluations of the last step is ``optimizer.last_evaluations``. All parameters
    form one vector (one param group); there is no ``lr``. torch has no line-search gradient descent.

    References:
        Prince, *Understanding Deep Learning*, MIT Press 2023, sec. 6.1.2 and fig. 6.10.
        Nocedal & Wright, *Numerical Optimization*, 2nd ed., Springer 2006, ch. 3.
    """

    reference = "Prince 2023 (UDL fig. 6.10); Nocedal & Wright 2006 ch. 3"
    step_protocol = "closure"  # see RuleOptimizer.step_protocol
    variants = METHODS

    def __init__(
        self,
        params: Any,
        method: str = "golden",
        max_step: float = 1.0,
        tolerance: float = 1e-8,
        *,
        c1: float = 1e-4,
        c2: float = 0.9,
        shrink: float = 0.5,
        max_evaluations: int = 100,
        max_expansions: int = 20,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown line-search method {method!r}; choose one of {', '.join(METHODS)}")
        check_positive("max_step", max_step)
        check_positive("tolerance", tolerance)
        check_unit_interval("c1", c1)
        check_unit_interval("shrink", shrink)
        if not 0 < c1 < c2 < 1:
            raise ValueError(f"need 0 < c1 < c2 < 1 for the Wolfe conditions, got c1={c1}, c2={c2}")
        if max_evaluations < 2:
            raise ValueError(f"max_evaluations must be >= 2, got {max_evaluations}")
        defaults = dict(
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
        if len(self.param_groups) != 1:
            raise ValueError("LineSearchGD searches along one vector: pass a single param group")
        self.step_sizes: list[float] = []
        self.last_step_size = 0.0
        self.last_evaluations = 0

    def _params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]

    def _gradient(self) -> Tensor:
        return torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self._params()]
        )

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """Search along the negative gradient and move there; returns the loss before the step."""
        if closure is None:
            raise ValueError("LineSearchGD.step needs a closure that computes the loss and calls backward()")
        group = self.param_groups[0]
        params = self._params()
        with torch.enable_grad():
            loss = closure()
        start = parameters_to_vector(params).detach().clone()
        gradient = self._gradient().detach().clone()
        direction = -gradient
        slope = float(gradient @ direction)
        self.last_evaluations = 0

        def evaluate(alpha: float, need_gradient: bool = False) -> tuple[float, float]:
            self.last_evaluations += 1
            with torch.no_grad():
                vector_to_parameters(start + alpha * direction, params)
            with torch.enable_grad():
                value = closure().detach().item()
            derivative = float(self._gradient() @ direction) if need_gradient else math.nan
            return value, derivative

        if slope == 0.0:
            alpha = 0.0
        elif group["method"] == "golden":
            alpha = self._golden(evaluate, group)
        elif group["method"] == "armijo":
            alpha = self._armijo(evaluate, loss.detach().item(), slope, group)
        else:
            alpha = self._strong_wolfe(evaluate, loss.detach().item(), slope, group)
        with torch.no_grad():
            vector_to_parameters(start + alpha * direction, params)
        self.last_step_size = alpha
        self.step_sizes.append(alpha)
        return loss

    @staticmethod
    def _golden(evaluate, group) -> float:
        low, high = 0.0, float(group["max_step"])
        budget = group["max_evaluations"]
        for _ in range(group["max_expansions"]):
            # Expand while the far end is still lower than an interior point: the minimum lies beyond.
            if evaluate(high)[0] < evaluate(GOLDEN * high)[0]:
                low, high = GOLDEN * high, 2.0 * high
            else:
                break
        b, c = high - GOLDEN * (high - low), low + GOLDEN * (high - low)
        h_b, h_c = evaluate(b)[0], evaluate(c)[0]
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
        return 0.5 * (low + high)

    @staticmethod
    def _armijo(evaluate, value0: float, slope: float, group) -> float:
        return armijo_backtracking(
            lambda alpha: evaluate(alpha)[0],
            value0,
            slope,
            initial_step=float(group["max_step"]),
            c1=group["c1"],
            shrink=group["shrink"],
            max_evaluations=group["max_evaluations"],
        )

    @staticmethod
    def _strong_wolfe(evaluate, value0: float, slope0: float, group) -> float:
        c1, c2 = group["c1"], group["c2"]
        budget = group["max_evaluations"]
        previous_alpha, previous_value = 0.0, value0
        alpha = float(group["max_step"])

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
