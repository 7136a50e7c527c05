"""Newton's method: exact or saddle-free Hessian solves for small models, Newton-CG for larger ones."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from descentlab.autodiff import HessianVectorProduct
from descentlab.optim._validation import (
    MAX_INTEGER,
    NON_NEGATIVE,
    OPEN_UNIT_INTERVAL,
    POSITIVE,
    Flag,
    Integer,
    LearningRate,
    Real,
    ValidatedOptimizer,
    hyperparameter_checks,
)
from descentlab.optim.line_search import armijo_backtracking
from descentlab.optim.search_space import Float

MODES = ("exact", "saddle-free", "cg")
LINE_SEARCHES = (None, "armijo")


def _format_bytes(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024.0 or unit == "TiB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024.0
    raise AssertionError("unreachable")


class Newton(ValidatedOptimizer):
    r"""Newton's method over all parameters as one vector :math:`\theta \in \mathbb R^n`.

    .. math::

        g = \nabla L(\theta), \quad H = \nabla^2 L(\theta), \qquad
        (H + \lambda I)\, d = -g, \qquad \theta \leftarrow \theta + \alpha\, d

    Each ``step(closure)`` computes :math:`L = L(\theta)`, :math:`g = \nabla L` and a direction
    :math:`d` from the Hessian :math:`H = \nabla^2 L`, then moves :math:`\theta \leftarrow \theta + \alpha d`
    with :math:`\alpha = \text{lr}` or, with ``line_search="armijo"``, the first of
    :math:`\text{lr}, \rho\,\text{lr}, \rho^2\text{lr}, \dots` with
    :math:`L(\theta + \alpha d) \le L(\theta) + c_1 \alpha\, g^\top d` (Nocedal & Wright, Alg. 3.1).
    ``damping`` is :math:`\lambda \ge 0` (Levenberg-Marquardt); ``damping=0`` is plain Newton.
    With ``adaptive_damping=True`` (Marquardt 1963) the loss is evaluated after the step: if it
    increased, the step is undone and :math:`\lambda \leftarrow \nu\lambda`; otherwise it is kept
    and :math:`\lambda \leftarrow \lambda/\nu` (:math:`\nu` = ``damping_factor``). The new :math:`\lambda`
    is written to ``param_groups[0]["damping"]`` (so it is saved in the ``state_dict``).

    Modes:
        - ``"exact"``: form :math:`H` (rows by batched Hessian-vector products) and solve
          :math:`(H + \lambda I)\,d = -g`. With :math:`\lambda = 0` and ``lr=1`` a quadratic is
          minimised in one step and convergence near a strict minimum is quadratic.
        - ``"saddle-free"``: :math:`H = V \Lambda V^\top` (``eigh``), :math:`|H| = V |\Lambda| V^\top`,
          :math:`d = -(|H| + \lambda I)^{-1} g` (Dauphin et al. 2014): along negative-curvature
          directions the step goes downhill instead of towards the saddle.
        - ``"cg"``: Newton-CG (truncated Newton, Nocedal & Wright Alg. 7.1) with Hessian-vector
          products only, never forming :math:`H`: conjugate gradients on :math:`(H + \lambda I) d = -g`
          from :math:`d = 0`, stopped when the residual falls below :math:`\epsilon`, after
          ``cg_max_iterations`` (default :math:`n`), or when a search direction :math:`p_j` has
          :math:`p_j^\top (H + \lambda I) p_j \le 0`; then it returns the current iterate, or
          :math:`-g` if that happens in the first iteration. :math:`\epsilon` is
          ``cg_tolerance`` :math:`\cdot \|g\|` or, with ``cg_tolerance=None``, the book's forcing
          term :math:`\min(0.5, \sqrt{\|g\|})\,\|g\|`, which gives superlinear convergence.

    The exact and saddle-free modes store an :math:`n \times n` matrix; above ``max_hessian_params``
    parameters they raise a ``ValueError`` giving :math:`n`, the Hessian's size in bytes, and advising
    ``mode="cg"``.

    Protocol: ``closure()`` must compute and return the scalar loss **with autograd enabled and
    without calling** ``backward()`` (unlike ``torch.optim.LBFGS``): Newton differentiates the loss
    twice, with ``torch.autograd.grad(..., create_graph=True)``, so it needs the graph intact. A
    closure that called ``backward()`` (freeing the graph) or returned a loss without ``grad_fn``
    raises a ``RuntimeError`` saying so. With ``line_search="armijo"`` (each trial step) and with
    ``adaptive_damping`` (once, after the step) the closure is called again under
    ``torch.no_grad()``. ``.grad`` is neither read nor written. ``step`` returns the (detached) loss
    before the step.

    Diagnostics of the last step (attributes): ``last_gradient_norm`` :math:`\|g\|`;
    ``last_newton_decrement`` :math:`\sqrt{-g^\top d}` for the Newton direction (:math:`= \sqrt{g^\top
    B^{-1} g}` with :math:`B` the matrix the mode inverts; NaN when :math:`g^\top d > 0`, an
    indefinite :math:`H`); ``last_step_norm`` :math:`\|\alpha d\|`; ``last_step_size`` :math:`\alpha`;
    ``last_cg_iterations`` (0 outside ``"cg"``); ``last_negative_curvature`` (``"cg"``: CG met a
    direction with :math:`p^\top B p \le 0`; ``"exact"``: :math:`H + \lambda I` is not positive
    definite; ``"saddle-free"``: :math:`H` has a negative eigenvalue); ``last_direction``
    (``"newton"``, or ``"gradient"`` when the line search fell back to :math:`-g` because the Newton
    direction was not a descent direction); ``last_evaluations`` (loss evaluations after the first);
    ``last_step_accepted`` (False only when adaptive damping undid the step).

    Notes:
        All parameters with ``requires_grad`` form one vector (a single param group, one dtype and
        device; frozen parameters are left out). ``lr`` and ``damping`` are read from the param group
        at every step, so schedulers act on them. Real float32 or float64 parameters only: float16 and
        bfloat16 raise a ``ValueError`` at construction or at the step that finds them. A singular
        :math:`H + \lambda I` (or a zero eigenvalue with ``"saddle-free"`` and ``damping=0``) raises a
        ``RuntimeError`` asking for ``damping > 0``. Without a line search, an indefinite ``"exact"``
        step is taken as computed (plain Newton heads for saddles). torch has no Newton optimizer.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> inputs, targets = torch.randn(32, 3), torch.randn(32, 1)
        >>> optimizer = Newton(model.parameters(), mode="exact")
        >>> closure = lambda: torch.nn.functional.mse_loss(model(inputs), targets)  # no backward()
        >>> loss_before = optimizer.step(closure)  # least squares: solved in one step

    Search space: lr (log; 1 is the Newton step), damping (log) only when used.

    References:
        Nocedal & Wright, *Numerical Optimization*, 2nd ed., Springer 2006: Alg. 3.1 (backtracking),
        sec. 3.3 (Newton's method, quadratic convergence), Alg. 7.1 (line-search Newton-CG).
        Dauphin, Pascanu, Gulcehre, Cho, Ganguli & Bengio, "Identifying and attacking the saddle point
        problem in high-dimensional non-convex optimization", NeurIPS 2014.
        Boyd & Vandenberghe, *Convex Optimization*, 2004, sec. 9.5.1 (the Newton decrement).
        Marquardt, "An Algorithm for Least-Squares Estimation of Nonlinear Parameters", SIAM J. Appl.
        Math. 11(2), 1963 (raising and lowering the damping by a factor).
    """

    reference = "Nocedal & Wright 2006 (ch. 3, Alg. 7.1); Dauphin et al. 2014 (saddle-free)"
    step_protocol = "closure-no-backward"  # see RuleOptimizer.step_protocol
    variants = ()
    search_space = (Float("lr", 1e-2, 1.0, "log"), Float("damping", 1e-6, 1.0, "log", optional=True))
    hyperparameters = hyperparameter_checks(
        lr=LearningRate(positive=True),
        damping=NON_NEGATIVE,
        adaptive_damping=Flag(),
        damping_factor=Real(1.0, low_open=True),
        max_hessian_params=Integer(1),
        c1=OPEN_UNIT_INTERVAL,
        shrink=OPEN_UNIT_INTERVAL,
        max_evaluations=Integer(1),
    )

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        mode: str = "exact",
        damping: float = 0.0,
        *,
        line_search: str | None = None,
        adaptive_damping: bool = False,
        damping_factor: float = 10.0,
        max_hessian_params: int = 5000,
        cg_tolerance: float | None = None,
        cg_max_iterations: int | None = None,
        c1: float = 1e-4,
        shrink: float = 0.5,
        max_evaluations: int = 30,
    ) -> None:
        defaults = dict(
            lr=lr,
            mode=mode,
            damping=damping,
            line_search=line_search,
            adaptive_damping=adaptive_damping,
            damping_factor=damping_factor,
            max_hessian_params=max_hessian_params,
            cg_tolerance=cg_tolerance,
            cg_max_iterations=cg_max_iterations,
            c1=c1,
            shrink=shrink,
            max_evaluations=max_evaluations,
        )
        super().__init__(params, defaults)
        params_list = self._params()
        self._check_params(params_list)
        self._check_hessian_size(params_list)
        self.last_gradient_norm = math.nan
        self.last_newton_decrement = math.nan
        self.last_step_norm = math.nan
        self.last_step_size = math.nan
        self.last_cg_iterations = 0
        self.last_negative_curvature = False
        self.last_direction = "newton"
        self.last_evaluations = 0
        self.last_step_accepted = True

    def check_group(self, group: dict[str, Any]) -> None:
        """Rules that involve several keys or optional values (the table holds the simple ones)."""
        mode, line_search, damping = group["mode"], group["line_search"], group["damping"]
        cg_tolerance, cg_max_iterations = group["cg_tolerance"], group["cg_max_iterations"]
        if mode not in MODES:
            raise ValueError(f"unknown Newton mode {mode!r}; choose one of {', '.join(MODES)}")
        if line_search not in LINE_SEARCHES:
            raise ValueError(f"line_search must be None or 'armijo', got {line_search!r}")
        if group["adaptive_damping"] and not damping > 0:
            raise ValueError(
                f"adaptive_damping=True scales damping up and down, so it needs damping > 0 to start "
                f"(e.g. damping=1e-3), got damping={damping!r}"
            )
        if group["adaptive_damping"] and line_search is not None:
            raise ValueError(
                "choose either line_search='armijo' or adaptive_damping=True: both decide how far to step"
            )
        if cg_tolerance is not None:
            POSITIVE("cg_tolerance", cg_tolerance)
        if cg_max_iterations is not None and not (
            isinstance(cg_max_iterations, int)
            and not isinstance(cg_max_iterations, bool)
            and 1 <= cg_max_iterations <= MAX_INTEGER
        ):
            raise ValueError(f"cg_max_iterations must be None or an integer >= 1, got {cg_max_iterations!r}")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add the (only) param group; a second one is refused: step() would never update its parameters."""
        if self.param_groups:
            raise ValueError("Newton works on one parameter vector: pass a single param group")
        super().add_param_group(param_group)

    def _params(self) -> list[Tensor]:
        return [p for p in self.param_groups[0]["params"] if p.requires_grad]

    @staticmethod
    def _check_params(params: list[Tensor]) -> None:
        if not params:
            raise ValueError("Newton got no parameter with requires_grad=True")
        for index, param in enumerate(params):
            if param.is_complex():
                raise ValueError(
                    f"Newton supports real parameters only; parameter {index} is {param.dtype} "
                    "(view it as real pairs with torch.view_as_real)"
                )
            if param.dtype not in (torch.float32, torch.float64):
                # The solves and eigendecompositions have no float16/bfloat16 kernels, and a Hessian in
                # 8-11 mantissa bits would give meaningless Newton steps anyway.
                raise ValueError(
                    f"Newton needs float32 or float64 parameters; parameter {index} is {param.dtype}: "
                    "convert the model with model.double() (or model.float()) before building Newton"
                )
            if param.dtype != params[0].dtype or param.device != params[0].device:
                raise ValueError(
                    f"Newton needs one dtype and device for all parameters; parameter {index} is "
                    f"{param.dtype} on {param.device}, parameter 0 is {params[0].dtype} on {params[0].device}"
                )

    def _check_hessian_size(self, params: list[Tensor]) -> None:
        group = self.param_groups[0]
        if group["mode"] == "cg":
            return
        count = sum(p.numel() for p in params)
        if count > group["max_hessian_params"]:
            size = _format_bytes(count * count * params[0].element_size())
            raise ValueError(
                f"Newton(mode={group['mode']!r}) would form a {count} x {count} Hessian for {count} "
                f"parameters, {size} in {params[0].dtype}, above max_hessian_params="
                f"{group['max_hessian_params']}; use mode='cg' (Newton-CG with Hessian-vector products, "
                "no Hessian stored), or raise max_hessian_params if that memory is fine"
            )

    @staticmethod
    def _check_loss(loss: Any) -> None:
        if not isinstance(loss, Tensor):
            raise RuntimeError(
                f"Newton: closure() must return the loss as a tensor with its autograd graph, got "
                f"{type(loss).__name__}; return the loss tensor itself, not loss.item()"
            )
        if loss.numel() != 1:
            raise RuntimeError(f"Newton: the loss must be a scalar, got shape {tuple(loss.shape)}")
        if loss.grad_fn is None:
            raise RuntimeError(
                "Newton: the loss returned by closure() has no autograd graph (grad_fn is None); compute "
                "it from the parameters with autograd enabled (no torch.no_grad(), .detach() or .item())"
            )

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor:  # type: ignore[override]
        """One Newton step (see the class protocol); returns the detached loss before the step."""
        if closure is None:
            raise ValueError(
                "Newton.step needs a closure that computes and returns the loss without calling backward()"
            )
        group = self.param_groups[0]
        params = self._params()
        self._check_params(params)
        self._check_hessian_size(params)
        with torch.enable_grad():
            loss = closure()
            self._check_loss(loss)
            # In a method of its own so the double-backward graph is freed on return, before the
            # line search calls the closure again.
            gradient, direction = self._newton_direction(loss, params, group)
        loss = loss.detach()

        slope = float(gradient @ direction)
        self.last_gradient_norm = float(gradient.norm())
        self.last_newton_decrement = math.sqrt(-slope) if slope <= 0 else math.nan
        self.last_direction = "newton"
        self.last_evaluations = 0
        start = [p.detach().clone() for p in params]

        def move_to(alpha: float) -> None:
            offset = 0
            with torch.no_grad():
                for param, origin in zip(params, start):
                    count = param.numel()
                    # alpha = 0 restores the start exactly, even after a non-finite direction.
                    moved = origin + alpha * direction[offset : offset + count].view_as(param)
                    param.copy_(origin if alpha == 0.0 else moved)
                    offset += count

        alpha = float(group["lr"])
        if group["line_search"] == "armijo":
            if slope >= 0.0 and float(gradient.norm()) > 0.0:
                # An indefinite H can give an ascent direction; steepest descent is always downhill.
                direction, slope = -gradient, -float(gradient @ gradient)
                self.last_direction = "gradient"

            def value_at(step_length: float) -> float:
                self.last_evaluations += 1
                move_to(step_length)
                with torch.no_grad():
                    return float(closure())

            alpha = armijo_backtracking(
                value_at,
                float(loss),
                slope,
                initial_step=alpha,
                c1=group["c1"],
                shrink=group["shrink"],
                max_evaluations=group["max_evaluations"],
            )
        move_to(alpha)
        self.last_step_accepted = True
        if group["adaptive_damping"]:
            self.last_evaluations += 1
            with torch.no_grad():
                not_worse = float(closure()) <= float(loss)
            if not_worse:
                group["damping"] = float(group["damping"]) / group["damping_factor"]
            else:
                group["damping"] = float(group["damping"]) * group["damping_factor"]
                move_to(0.0)
                alpha, self.last_step_accepted = 0.0, False
        self.last_step_size = alpha
        self.last_step_norm = alpha * float(direction.norm())
        return loss

    def _newton_direction(self, loss: Tensor, params: list[Tensor], group: dict[str, Any]):
        """The gradient and the mode's Newton direction at the current parameters."""
        try:
            hessian = HessianVectorProduct(loss, params)
        except RuntimeError as error:
            if "second time" not in str(error):
                raise
            raise RuntimeError(
                "Newton: the loss graph was already freed, most likely because closure() called "
                "loss.backward(); Newton differentiates the loss twice itself, so the closure must "
                "only compute and return the loss (remove backward() and zero_grad() from it)"
            ) from error
        gradient, damping = hessian.gradient, float(group["damping"])
        self.last_cg_iterations = 0
        if group["mode"] == "cg":
            return gradient, self._conjugate_gradient(hessian, gradient, damping, group)
        if group["mode"] == "exact":
            return gradient, self._solve_damped(hessian.dense(), gradient, damping)
        return gradient, self._saddle_free(hessian.dense(), gradient, damping)

    def _solve_damped(self, hessian: Tensor, gradient: Tensor, damping: float) -> Tensor:
        matrix = hessian + damping * torch.eye(len(gradient), dtype=hessian.dtype, device=hessian.device)
        factor, info = torch.linalg.cholesky_ex(matrix)
        self.last_negative_curvature = bool(info != 0)
        if not self.last_negative_curvature:
            return -torch.cholesky_solve(gradient.unsqueeze(1), factor).squeeze(1)
        direction, info = torch.linalg.solve_ex(matrix, -gradient)
        if info != 0 or not bool(torch.isfinite(direction).all()):
            raise RuntimeError(
                f"Newton: H + damping*I is singular (damping={damping}); set damping > 0 "
                "(Levenberg-Marquardt) or use mode='saddle-free' with damping > 0"
            )
        return direction

    def _saddle_free(self, hessian: Tensor, gradient: Tensor, damping: float) -> Tensor:
        eigenvalues, eigenvectors = torch.linalg.eigh(hessian)
        self.last_negative_curvature = bool((eigenvalues < 0).any())
        scale = eigenvalues.abs() + damping
        if bool((scale == 0).any()):
            raise RuntimeError(
                "Newton(mode='saddle-free'): the Hessian has a zero eigenvalue and damping=0; set damping > 0"
            )
        return -eigenvectors @ ((eigenvectors.T @ gradient) / scale)

    def _conjugate_gradient(
        self, hessian_vector_product: HessianVectorProduct, gradient: Tensor, damping: float, group
    ) -> Tensor:
        gradient_norm = float(gradient.norm())
        if group["cg_tolerance"] is None:
            tolerance = min(0.5, math.sqrt(gradient_norm)) * gradient_norm  # the forcing term of N&W Alg. 7.1
        else:
            tolerance = group["cg_tolerance"] * gradient_norm
        max_iterations = group["cg_max_iterations"] or len(gradient)
        self.last_negative_curvature = False
        solution = torch.zeros_like(gradient)
        if gradient_norm == 0.0:
            return solution
        residual = gradient.clone()
        search = -residual
        residual_square = float(residual @ residual)
        for iteration in range(max_iterations):
            curved = hessian_vector_product(search) + damping * search
            curvature = float(search @ curved)
            self.last_cg_iterations = iteration + 1
            if curvature <= 0.0:
                self.last_negative_curvature = True
                return -gradient if iteration == 0 else solution
            alpha = residual_square / curvature
            solution = solution + alpha * search
            residual = residual + alpha * curved
            new_residual_square = float(residual @ residual)
            if math.sqrt(new_residual_square) < tolerance:
                break
            search = -residual + (new_residual_square / residual_square) * search
            residual_square = new_residual_square
        return solution
