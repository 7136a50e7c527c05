"""Paths of one optimizer over a 2-D problem's loss surface, for many hyperparameter settings at once.

Every path is made by the optimizer class itself (``descentlab.optim``, through the registry), stepped
by the lab's stepper for its ``step_protocol``: nothing here re-implements an update rule. The loss
is the problem's own surface ``Problem.function`` (the full-data loss for the textbook models, the
closed form for the 2-D functions); the ``noisy-`` problems add the gradient noise their seed-0 task
draws, step by step, so a path equals a lab run of seed 0 started at the same point.

**Sharing one optimizer.** An update that is elementwise and reads each param group alone gives the
same numbers for a point whether it is stepped alone or as one row of a larger tensor next to others
(the rows never meet: the loss is a sum of one term per row). So for optimizers with the ``gradient``
protocol that declare an elementwise update (``block_numel > 0``, see
:class:`~descentlab.optim.RuleOptimizer`), every setting becomes one param group holding one tensor of
shape ``(starts, 2)``, and one ``step()`` advances every path. Measured on the Gabor model (Adam's 144
settings x 4 starts, 200 steps): 7.7 ms of CPU per path, against 146 ms with one optimizer per path.
Other optimizers (line search, Newton, SWATS' whole-group switch test, SVRG) run one path at a time
through the same code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer

from descentlab.lab.protocols import Counts, stepper_for
from descentlab.optim.registry import make_optimizer, resolve_optimizer_class, step_protocol
from descentlab.problems.base import Problem, Task
from descentlab.problems.functions2d import add_gradient_noise
from descentlab.problems.registry import all_problems, get_problem

Bounds = tuple[tuple[float, float], tuple[float, float]]


def explorable_problems() -> list[str]:
    """Names of the registered problems with a 2-D loss surface (``function`` and ``bounds``)."""
    return [problem.name for problem in all_problems() if is_explorable(problem)]


def is_explorable(problem: Problem) -> bool:
    """Whether ``problem`` has a loss surface over two parameters that the explorer can draw."""
    return problem.function is not None and problem.bounds is not None


def explorable_problem(name: str) -> Problem:
    """The registered 2-D problem ``name``; any other name is a ``ValueError`` listing the 2-D ones."""
    known = ", ".join(explorable_problems())
    try:
        problem = get_problem(name)
    except ValueError:
        raise ValueError(f"unknown problem {name!r}; the explorer knows the 2-D problems: {known}") from None
    if not is_explorable(problem):
        raise ValueError(
            f"problem {name!r} has more than two parameters, so it has no surface to draw; "
            f"the explorer knows the 2-D problems: {known}"
        )
    return problem


def shares_optimizer(cls: type[Optimizer]) -> bool:
    """Whether paths of ``cls`` may share one optimizer: a plain gradient protocol and a chain that
    declares itself elementwise (``RuleOptimizer.elementwise``, derived from its transforms). A per-tensor
    or per-group reduction (a trust ratio, a norm, Prodigy's distance estimate, SWATS's switch test) would
    mix the paths sharing one tensor, so those classes, and classes that declare nothing, run alone."""
    declared = getattr(cls, "elementwise", False) is True and getattr(cls, "block_numel", 0) > 0
    return step_protocol(cls) == "gradient" and declared


def extended_window(bounds: Bounds) -> Bounds:
    """The window widened by its own width on every side: paths are followed until they leave it."""
    return tuple((low - (high - low), high + (high - low)) for low, high in bounds)  # type: ignore[return-value]


def compute_paths(
    problem: Problem,
    optimizer: str | type[Optimizer],
    settings: Sequence[Mapping[str, Any]],
    starts: Sequence[tuple[float, float]],
    steps: int,
) -> np.ndarray:
    """The iterates of ``optimizer`` from every start for every setting: shape ``(settings, starts,
    steps + 1, 2)``, float64, the start first.

    Args:
        problem: a 2-D problem (see :func:`explorable_problem`).
        optimizer: a registry name or class.
        settings: hyperparameters of each path (param-group keys such as ``lr``, ``betas``).
        starts: the initial points.
        steps: optimizer steps per path.

    A path is followed until its point is not finite or leaves :func:`extended_window`; the points after
    that are NaN. Points are the optimizer's true iterate (``at_iterate`` where the class has one, e.g.
    Nesterov's look-ahead form).
    """
    cls = resolve_optimizer_class(optimizer)
    paths = np.full((len(settings), len(starts), steps + 1, 2), np.nan)
    if shares_optimizer(cls):
        paths[:] = _run(problem, cls, settings, starts, steps)
        return paths
    for index, setting in enumerate(settings):
        for column, start in enumerate(starts):
            paths[index, column] = _run(problem, cls, [setting], [start], steps)[0, 0]
    return paths


def _run(
    problem: Problem,
    cls: type[Optimizer],
    settings: Sequence[Mapping[str, Any]],
    starts: Sequence[tuple[float, float]],
    steps: int,
) -> np.ndarray:
    """One optimizer with a param group per setting, each a ``(starts, 2)`` tensor; returns the paths."""
    initial = torch.tensor(starts, dtype=torch.get_default_dtype())
    points = [nn.Parameter(initial.clone()) for _ in settings]
    groups = [{"params": [point], **setting} for point, setting in zip(points, settings)]
    optimizer = make_optimizer(cls, groups)
    task = _surface_task(problem, points)
    stepper = stepper_for(step_protocol(cls))(task, optimizer, task.loss, points, lambda: False, Counts())
    (x_low, x_high), (y_low, y_high) = extended_window(problem.bounds)
    low = torch.tensor([x_low, y_low], dtype=torch.float64)
    high = torch.tensor([x_high, y_high], dtype=torch.float64)
    trace = torch.full((steps + 1, len(settings), len(starts), 2), float("nan"), dtype=torch.float64)
    trace[0] = initial.double()
    alive = torch.ones(len(settings), len(starts), dtype=torch.bool)
    for step in range(1, steps + 1):
        try:
            stepper.step(next(task.batches))
        except RuntimeError:  # a singular Hessian, a line search that found no decrease: the path ends
            break
        with _at_iterate(optimizer), torch.no_grad():
            now = torch.stack([point.detach() for point in points]).double()
        alive &= torch.isfinite(now).all(-1) & (now >= low).all(-1) & (now <= high).all(-1)
        trace[step] = torch.where(alive.unsqueeze(-1), now, float("nan"))
        if not alive.any():
            break
    return trace.permute(1, 2, 0, 3).numpy()


def _at_iterate(optimizer: Optimizer) -> contextlib.AbstractContextManager:
    at_iterate = getattr(optimizer, "at_iterate", None)
    return at_iterate() if at_iterate is not None else contextlib.nullcontext()


def _surface_task(problem: Problem, points: list[nn.Parameter]) -> Task:
    """A task whose loss is the sum of the problem's surface over every row of ``points``.

    Its batches are those of the problem's seed-0 task: for a ``noisy-`` problem each is the step's
    gradient noise, added to every row as that task adds it to its one point.
    """
    source = problem.task(0)
    noisy = "noisy" in problem.tags

    def loss(batch: Any) -> torch.Tensor:
        value = problem.function(torch.stack(list(points))).sum()
        if noisy:
            for point in points:
                value = add_gradient_noise(value, point, batch.to(point.dtype))
        return value

    def batches() -> Iterator[Any]:
        yield from source.batches

    return Task(
        model=nn.ParameterList(points),
        batches=batches(),
        loss=loss,
        evaluate=dict,
        epoch_batches=source.epoch_batches,
    )


def surface_values(problem: Problem, points: np.ndarray) -> np.ndarray:
    """The problem's loss at ``points`` (shape ``(..., 2)``), float64; NaN where a point is NaN."""
    finite = np.isfinite(points).all(-1)
    safe = np.where(finite[..., None], points, 0.0)
    with torch.no_grad():
        values = problem.function(torch.from_numpy(safe)).double().numpy()
    return np.where(finite, values, np.nan)
