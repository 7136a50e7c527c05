"""Shared machinery of the optimizer contract tests: problems with closed-form gradients and runners.

Gradients come from NumPy closed forms, so our optimizer and the float64 reference (or torch.optim) see
the same gradient oracle and only the update rules are compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class GradientProblem:
    """Initial parameters, a closed-form gradient, and how parameters split into param groups."""

    name: str
    initial: list[np.ndarray]
    gradient: object  # callable: list[np.ndarray] -> list[np.ndarray]
    groups: list[list[int]] = field(default_factory=list)  # indices per group; [] means one group

    def group_indices(self) -> list[list[int]]:
        return self.groups or [list(range(len(self.initial)))]


def _rosenbrock_gradient(params):
    x, y = params[0]
    return [np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])]


def _bowl_gradient(params):
    x, y = params[0]
    return [np.array([x / 10.0, 2.0 * y])]


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


def _quadratic_gradient(params):
    # f = sum_i 0.5 * a_i (p_i - c_i)^2 + 0.1 * p_i^4 (non-quadratic, so adaptive methods are exercised)
    return [a * (p - c) + 0.4 * p**3 for p, a, c in zip(params, _SCALES, _SHIFTS)]


PROBLEMS = [
    GradientProblem("rosenbrock", [np.array([-1.2, 1.0])], _rosenbrock_gradient),
    GradientProblem("bowl", [np.array([-7.0, 2.0])], _bowl_gradient),
    GradientProblem(
        "quadratic-groups",
        [np.full((3, 4), 1.5), np.linspace(-2, 2, 5), np.full((2, 2, 2), -0.5)],
        _quadratic_gradient,
        groups=[[0, 1], [2]],
    ),
]


def run_reference(
    step_fn, problem: GradientProblem, group_hypers: list[dict], steps: int
) -> list[np.ndarray]:
    """Run a float64 reference step function for ``steps`` steps; return the final parameters."""
    params = [p.astype(np.float64).copy() for p in problem.initial]
    states = [{} for _ in params]
    for t in range(1, steps + 1):
        grads = problem.gradient(params)
        for indices, hyper in zip(problem.group_indices(), group_hypers):
            for i in indices:
                params[i] = step_fn(params[i], grads[i], states[i], hyper, t)
    return params


def make_tensors(problem: GradientProblem) -> list[torch.Tensor]:
    return [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in problem.initial]


def param_groups(problem: GradientProblem, tensors: list[torch.Tensor], group_hypers: list[dict]):
    return [
        {"params": [tensors[i] for i in indices], **hyper}
        for indices, hyper in zip(problem.group_indices(), group_hypers)
    ]


def run_optimizer(optimizer, tensors, problem: GradientProblem, steps: int) -> list[np.ndarray]:
    """Drive any torch optimizer with the problem's closed-form gradients."""
    for _ in range(steps):
        grads = problem.gradient([t.detach().numpy() for t in tensors])
        for tensor, grad in zip(tensors, grads):
            tensor.grad = torch.tensor(grad, dtype=torch.float64)
        optimizer.step()
    return [t.detach().numpy().copy() for t in tensors]


def split_hyper(hyper: dict) -> tuple[dict, dict]:
    """Split hyperparameters into constructor-only keys (variant, flags) and per-group keys."""
    constructor = {k: v for k, v in hyper.items() if k in ("variant",)}
    return constructor, {k: v for k, v in hyper.items() if k not in constructor}
