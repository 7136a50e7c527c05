"""What a problem is: the contract between :mod:`descentlab.problems` and the lab.

A :class:`Problem` is a description (name, kind, default budget, target, known optimum) that builds a
:class:`Task` for a given seed. The same seed gives the same data, the same initial parameters and the
same minibatch order whatever optimizer trains it, so comparisons between optimizers are paired.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

ProblemKind = Literal["function2d", "model", "learning"]


@dataclass
class Task:
    """One seeded instance of a problem, ready to train.

    Attributes:
        model: the module whose ``parameters()`` the optimizer updates (for a 2-D function, a module
            holding one parameter of shape ``(2,)``).
        batches: an endless iterator of minibatches in a seed-determined order (``None`` items for
            full-batch problems such as the 2-D functions).
        loss: maps a minibatch to the scalar training loss of ``model`` on it (differentiable).
        evaluate: returns validation metrics as a dict; the problem's ``metric`` names the headline key.
        steps_per_epoch: minibatches in one pass over the training data (1 for full-batch problems).
    """

    model: nn.Module
    batches: Iterator[Any]
    loss: Callable[[Any], torch.Tensor]
    evaluate: Callable[[], dict[str, float]]
    steps_per_epoch: int = 1


@dataclass(frozen=True)
class Problem:
    """A registered problem: a description plus a factory of seeded :class:`Task` objects.

    Attributes:
        name: registry key used on the command line (``bowl``, ``rosenbrock``, ``digits-mlp``, ...).
        summary: one line shown by ``descentlab problems``.
        kind: ``"function2d"`` (a 2-D test function), ``"model"`` (a textbook model fitted by least
            squares) or ``"learning"`` (a data set with a train/validation split).
        make_task: ``make_task(seed, batch_size)`` builds the task; ``batch_size=None`` uses the default.
        budget_steps: default number of optimizer steps.
        batch_size: default minibatch size (``None`` for full-batch problems).
        metric: key of ``Task.evaluate()`` reported as the headline metric.
        higher_is_better: whether a larger ``metric`` is better (accuracy) or worse (loss).
        target: value of ``metric`` that counts as "reached" for steps/seconds-to-target.
        optimum: the known minimum of the training loss, where known.
        function: for ``function2d`` (and 2-parameter ``model``) problems, the loss as a function of a
            ``(..., 2)`` tensor, vectorised over leading dimensions, for contour plots.
        bounds: plotting window ``((x_min, x_max), (y_min, y_max))`` for 2-D problems.
        minima: known minimisers of 2-D problems, for marking on plots.
        start: initial point of 2-D problems.
        tags: free-form labels (``"noisy"``, ``"textbook"``, ``"default"``).
    """

    name: str
    summary: str
    kind: ProblemKind
    make_task: Callable[[int, int | None], Task]
    budget_steps: int
    batch_size: int | None = None
    metric: str = "loss"
    higher_is_better: bool = False
    target: float | None = None
    optimum: float | None = None
    function: Callable[[torch.Tensor], torch.Tensor] | None = None
    bounds: tuple[tuple[float, float], tuple[float, float]] | None = None
    minima: tuple[tuple[float, float], ...] = ()
    start: tuple[float, float] | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    def task(self, seed: int = 0, batch_size: int | None = None) -> Task:
        """Build the seeded task (``batch_size=None`` keeps the problem's default)."""
        return self.make_task(seed, batch_size if batch_size is not None else self.batch_size)
