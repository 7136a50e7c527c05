"""Shared machinery of the optimizer contract tests: problems with closed-form oracles, and runners.

Gradients, values and Hessians come from NumPy closed forms, so our optimizer and the float64 reference
see the same oracle and only the update rules are compared. Optimizers are driven by the step protocol
their class declares (``step_protocol``, see descentlab.lab.protocols): ``gradient`` (``.grad`` set, then
``step()``), ``closure`` (the closure sets ``.grad`` and returns the loss, called as often as the
optimizer likes), ``closure-no-backward`` (the closure returns the loss with its graph; Newton builds
its own derivatives) and ``svrg`` (a full-gradient snapshot whenever the optimizer asks, then a step
whose closure is evaluated at the iterate and at the snapshot).

Every problem is also a finite sum over :data:`BATCH_WEIGHTS`: minibatch ``k`` adds
``w_k / 2 * ||x||^2`` with ``sum(w_k) = 0``, so the minibatch gradients differ (nonlinearly in the
distance between two points, so SVRG's correction does not cancel) and their mean is the full gradient.
Step ``t`` (1-based) sees minibatch ``(t - 1) % len(BATCH_WEIGHTS)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from descentlab.optim.registry import step_protocol

BATCH_WEIGHTS = (0.6, -0.1, -0.5)


@dataclass
class GradientProblem:
    """Initial parameters, closed-form value / gradient / Hessian, a torch loss, and param groups."""

    name: str
    initial: list[np.ndarray]
    gradient: Callable  # list[np.ndarray] -> list[np.ndarray]
    value: Callable  # list[np.ndarray] -> float
    hessian: Callable  # list[np.ndarray] -> the (n, n) Hessian over the flat concatenated parameters
    loss: Callable  # list[torch.Tensor] -> scalar tensor, the same function for autograd (Newton)
    groups: list[list[int]] = field(default_factory=list)  # indices per group; [] means one group

    def group_indices(self) -> list[list[int]]:
        return self.groups or [list(range(len(self.initial)))]

    def batch_gradient(self, params: list[np.ndarray], batch: int) -> list[np.ndarray]:
        """Gradient of minibatch ``batch``: the full gradient plus ``BATCH_WEIGHTS[batch] * x``."""
        return [g + BATCH_WEIGHTS[batch] * p for g, p in zip(self.gradient(params), params)]

    def batch_value(self, params: list[np.ndarray], batch: int) -> float:
        return self.value(params) + 0.5 * BATCH_WEIGHTS[batch] * sum(float((p * p).sum()) for p in params)


def _rosenbrock_value(params):
    x, y = params[0]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _rosenbrock_gradient(params):
    x, y = params[0]
    return [np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])]


def _rosenbrock_hessian(params):
    x, y = params[0]
    return np.array([[2 - 400 * y + 1200 * x * x, -400 * x], [-400 * x, 200.0]])


def _rosenbrock_loss(tensors):
    x, y = tensors[0][0], tensors[0][1]
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def _bowl_value(params):
    x, y = params[0]
    return x * x / 20.0 + y * y


def _bowl_gradient(params):
    x, y = params[0]
    return [np.array([x / 10.0, 2.0 * y])]


def _bowl_loss(tensors):
    x, y = tensors[0][0], tensors[0][1]
    return x * x / 20.0 + y * y


_SCALES = [
    np.linspace(0.5, 3.0, 12).reshape(3, 4),
    np.linspace(0.1, 2.0, 5),
    np.linspace(1.0, 4.0, 8).reshape(2, 2, 2),
]
_SHIFTS = [
    np.cos(np.arange(12.0)).reshape(3, 4),
    np.sin(np.arange(5.0)),
    np.cos(np.arange(8.0) * 0.7).reshape(2, 2, 2),
]


# f = sum_i 0.5 * a_i (p_i - c_i)^2 + 0.1 * p_i^4 (non-quadratic, so adaptive methods are exercised)
def _quadratic_value(params):
    return sum(
        float((0.5 * a * (p - c) ** 2 + 0.1 * p**4).sum()) for p, a, c in zip(params, _SCALES, _SHIFTS)
    )


def _quadratic_gradient(params):
    return [a * (p - c) + 0.4 * p**3 for p, a, c in zip(params, _SCALES, _SHIFTS)]


def _quadratic_hessian(params):
    return np.diag(np.concatenate([(a + 1.2 * p**2).ravel() for p, a in zip(params, _SCALES)]))


def _quadratic_loss(tensors):
    return sum(
        (0.5 * torch.tensor(a) * (t - torch.tensor(c)) ** 2 + 0.1 * t**4).sum()
        for t, a, c in zip(tensors, _SCALES, _SHIFTS)
    )


PROBLEMS = [
    GradientProblem(
        "rosenbrock",
        [np.array([-1.2, 1.0])],
        _rosenbrock_gradient,
        _rosenbrock_value,
        _rosenbrock_hessian,
        _rosenbrock_loss,
    ),
    GradientProblem(
        "bowl",
        [np.array([-7.0, 2.0])],
        _bowl_gradient,
        _bowl_value,
        lambda params: np.diag([0.1, 2.0]),
        _bowl_loss,
    ),
    GradientProblem(
        "quadratic-groups",
        [np.full((3, 4), 1.5), np.linspace(-2, 2, 5), np.full((2, 2, 2), -0.5)],
        _quadratic_gradient,
        _quadratic_value,
        _quadratic_hessian,
        _quadratic_loss,
        groups=[[0, 1], [2]],
    ),
]


class FlatOracle:
    """The problem seen from one unit (a tensor or a param group) as a flat float64 vector ``x``.

    The other parameters stay at the values the step started from, which is what a simultaneous update
    of all units sees. ``batch`` is the minibatch of this step (SVRG). A group-scope reference evaluated
    away from the step's start (SVRG's snapshot, a line search's trial points) equals the optimizer's
    joint evaluation only where the problem is separable across groups, as quadratic-groups is.
    """

    def __init__(self, problem: GradientProblem, start: list[np.ndarray], indices: list[int], batch: int):
        self.problem, self.start, self.indices, self.batch = problem, start, indices, batch
        offsets = np.cumsum([0] + [p.size for p in start])
        self._flat_indices = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in indices])

    def flat(self, params: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([params[i].ravel() for i in self.indices])

    def unflat(self, x: np.ndarray) -> list[np.ndarray]:
        """All parameters, with this unit's replaced by ``x``."""
        params = [p.copy() for p in self.start]
        offset = 0
        for i in self.indices:
            params[i] = x[offset : offset + params[i].size].reshape(params[i].shape)
            offset += params[i].size
        return params

    def value(self, x: np.ndarray) -> float:
        return self.problem.value(self.unflat(x))

    def gradient(self, x: np.ndarray) -> np.ndarray:
        return self.flat(self.problem.gradient(self.unflat(x)))

    def batch_gradient(self, x: np.ndarray) -> np.ndarray:
        return self.flat(self.problem.batch_gradient(self.unflat(x), self.batch))

    def hessian(self, x: np.ndarray) -> np.ndarray:
        return self.problem.hessian(self.unflat(x))[np.ix_(self._flat_indices, self._flat_indices)]


def run_reference(
    step_fn,
    scope: str,
    problem: GradientProblem,
    groups: list[list[int]],
    group_hypers: list[dict],
    steps: int,
) -> list[np.ndarray]:
    """Run a float64 reference for ``steps`` steps; return the final parameters.

    ``scope="tensor"``: ``step_fn(x, grad, state, hyper, t)`` per parameter tensor (elementwise rules),
    flat; ``scope="shaped"``: the same with ``x`` and ``grad`` in the parameter's shape (per-tensor rules
    that see rows and columns, such as Adafactor's factored moments).
    ``scope="group"``: ``step_fn(x, oracle, state, hyper, t)`` over the flat vector of each param group,
    with a :class:`FlatOracle` for algorithms that need values, Hessians or minibatch gradients.
    """
    params = [p.astype(np.float64).copy() for p in problem.initial]
    units = []  # (parameter indices, hyperparameters) of each vector the reference updates
    for indices, hyper in zip(groups, group_hypers):
        units.extend([([i], hyper) for i in indices] if scope != "group" else [(indices, hyper)])
    states = [{} for _ in units]
    for t in range(1, steps + 1):
        start = [p.copy() for p in params]
        for (indices, hyper), state in zip(units, states):
            oracle = FlatOracle(problem, start, indices, (t - 1) % len(BATCH_WEIGHTS))
            x = oracle.flat(start)
            if scope == "shaped":
                shape = start[indices[0]].shape
                new = step_fn(x.reshape(shape), oracle.gradient(x).reshape(shape), state, hyper, t).ravel()
            else:
                new = step_fn(x, oracle.gradient(x) if scope == "tensor" else oracle, state, hyper, t)
            updated = oracle.unflat(new)
            for i in indices:
                params[i] = updated[i]
    return params


def make_tensors(problem: GradientProblem) -> list[torch.Tensor]:
    return [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in problem.initial]


def param_groups(
    problem: GradientProblem, tensors: list[torch.Tensor], group_hypers: list[dict], groups=None
):
    return [
        {"params": [tensors[i] for i in indices], **hyper}
        for indices, hyper in zip(groups or problem.group_indices(), group_hypers)
    ]


def _set_grads(tensors, grads) -> None:
    for tensor, grad in zip(tensors, grads):
        tensor.grad = torch.tensor(grad, dtype=torch.float64)


def _values(tensors) -> list[np.ndarray]:
    return [t.detach().numpy() for t in tensors]


def run_optimizer(optimizer, tensors, problem: GradientProblem, steps: int) -> list[np.ndarray]:
    """Drive any optimizer with the problem's closed-form oracles, by its class's step protocol."""
    protocol = step_protocol(type(optimizer))
    for t in range(1, steps + 1):
        batch = (t - 1) % len(BATCH_WEIGHTS)
        if protocol == "gradient":
            _set_grads(tensors, problem.gradient(_values(tensors)))
            optimizer.step()
        elif protocol == "closure-no-backward":
            optimizer.step(lambda: problem.loss(tensors))
        else:
            full = _closed_form_closure(tensors, problem.value, problem.gradient)
            if protocol == "svrg" and optimizer.needs_snapshot:
                optimizer.take_snapshot(full)
            if protocol == "svrg":
                optimizer.step(
                    _closed_form_closure(
                        tensors,
                        lambda params, k=batch: problem.batch_value(params, k),
                        lambda params, k=batch: problem.batch_gradient(params, k),
                    )
                )
            else:
                optimizer.step(full)
    return [t.detach().numpy().copy() for t in tensors]


def _closed_form_closure(tensors, value, gradient):
    """A closure that sets ``.grad`` to the closed-form gradient and returns the closed-form value."""

    def closure():
        params = _values(tensors)
        _set_grads(tensors, gradient(params))
        return torch.tensor(value(params), dtype=torch.float64)

    return closure


# --- the mixed parameter set of the generic contract checks, driven through autograd -------------------
MIXED_SHAPES = [(4, 3), (0,), (6,), (2, 2, 2)]  # the (0,) tensor is a zero-size parameter
NO_GRAD_INDEX = 2  # this parameter is absent from the loss, so gets no gradient, on steps with step % 4 == 3
MIXED_BATCHES = 4  # the loss depends on step % 4: four minibatches (SVRG's full loss is their mean)


def mixed_params(complex_param: bool = True, zero_size: bool = True) -> list[torch.Tensor]:
    """Real float64 tensors of :data:`MIXED_SHAPES` (without the zero-size one unless ``zero_size``) and,
    with ``complex_param``, a complex128 one."""
    generator = torch.Generator().manual_seed(0)
    params = [
        torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_()
        for shape in MIXED_SHAPES
        if zero_size or 0 not in shape
    ]
    if complex_param:
        params.append(torch.randn(5, generator=generator, dtype=torch.complex128).requires_grad_())
    return params


def mixed_loss(params: list[torch.Tensor], step: int, none_grads: bool = True) -> torch.Tensor:
    """A convex loss whose cubic term changes with ``step % 4`` (distinct minibatches for SVRG)."""
    total = 0
    for index, param in enumerate(params):
        if none_grads and step % MIXED_BATCHES == 3 and index == NO_GRAD_INDEX:
            continue
        cubic = 0.04 * (1 + step % MIXED_BATCHES)
        total = total + ((param.abs() ** 2) * (index + 1)).sum() + cubic * (param.abs() ** 3).sum()
    return total


def backward_closure(optimizer, loss_fn):
    """The closure of the ``closure`` and ``svrg`` protocols: zero the gradients, backward, return loss."""

    def closure():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        return loss

    return closure


def protocol_step(optimizer, loss_fn, full_loss_fn=None, closure: bool = False):
    """One ``optimizer.step`` as its class's step protocol says; returns what ``step`` returned.

    ``loss_fn()`` computes this step's loss from the parameters; ``full_loss_fn()`` the full-data loss of
    SVRG's snapshots. With ``closure=True`` a ``gradient``-protocol optimizer gets a backward closure
    too (the optional closure torch optimizers accept) instead of ``backward()`` before ``step()``.
    """
    protocol = step_protocol(type(optimizer))
    if protocol == "closure-no-backward":
        return optimizer.step(loss_fn)
    if protocol == "svrg" and optimizer.needs_snapshot:
        optimizer.take_snapshot(backward_closure(optimizer, full_loss_fn))
    if protocol == "gradient" and not closure:
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        return optimizer.step()
    return optimizer.step(backward_closure(optimizer, loss_fn))


def mean_over_batches(objective, params) -> torch.Tensor:
    """The full-data loss of the mixed problem: the mean of ``objective(params, step)`` over its batches."""
    return sum(objective(params, batch) for batch in range(MIXED_BATCHES)) / MIXED_BATCHES


def drive(optimizer, params, steps, start=0, scheduler=None, objective=mixed_loss):
    """``steps`` protocol steps on ``objective(params, step)``, from step ``start``."""
    for step in range(start, start + steps):
        protocol_step(
            optimizer,
            lambda step=step: objective(params, step),
            lambda: mean_over_batches(objective, params),
        )
        if scheduler is not None:
            scheduler.step()


def seeded_tensors(shapes, seed: int, requires_grad: bool = False) -> list[torch.Tensor]:
    """float64 normal tensors of ``shapes`` drawn from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(shape, generator=generator, dtype=torch.float64).requires_grad_(requires_grad)
        for shape in shapes
    ]
