"""One training step for each step protocol an optimizer declares (``step_protocol``).

The runner never looks at optimizer names: it asks the class for its protocol and takes the stepper
registered here for it.

- ``gradient``: ``backward()`` on the minibatch loss, then ``step()`` (every torch-style optimizer,
  SWATS included).
- ``closure``: ``step(closure)`` where the closure zeroes the gradients, computes the loss and calls
  ``backward()``; the optimizer may call it many times per step (line search).
- ``closure-no-backward``: ``step(closure)`` where the closure only returns the loss with its graph
  (Newton builds gradients and Hessian-vector products itself).
- ``svrg``: a full-gradient snapshot over one pass of the training set whenever the optimizer asks
  (by default once per epoch), then ``step(closure)`` with the closure evaluated at the iterate and
  at the snapshot.

Every stepper counts the work it caused in minibatch units: a loss evaluation is a forward pass over
a minibatch, a gradient evaluation a backward pass, and a Hessian-vector product counts as two
gradient evaluations (Pearlmutter's R-operator costs one more forward-backward pass).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer

from descentlab.optim._rules import norms
from descentlab.problems.base import Task

HVP_COST = 2
"""Gradient evaluations one Hessian-vector product counts as."""


@dataclass
class Counts:
    """Work done so far, in minibatch units."""

    loss_evaluations: int = 0
    gradient_evaluations: int = 0


@dataclass
class StepOutcome:
    """What one step saw: the loss and gradient norm at its start, and whether it was skipped."""

    loss: float
    grad_norm: float | None
    skipped: bool = False


Objective = Callable[[Any], torch.Tensor]
"""Minibatch -> training loss (penalties included), differentiable."""

AfterBackward = Callable[[], bool]
"""Called after each backward pass (gradient clipping); returns True when the step must be skipped."""


def gradient_norm(parameters: list[torch.Tensor]) -> float | None:
    """Global 2-norm of the gradients held now (``None`` when no parameter has one)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return None
    return float(torch.linalg.vector_norm(torch.stack(norms(grads)).double()))


class Stepper:
    """Runs one optimizer step on a minibatch under one protocol, counting its work."""

    def __init__(
        self,
        task: Task,
        optimizer: Optimizer,
        objective: Objective,
        parameters: list[torch.Tensor],
        after_backward: AfterBackward,
        counts: Counts,
    ) -> None:
        self.task, self.optimizer, self.objective = task, optimizer, objective
        self.parameters, self.after_backward, self.counts = parameters, after_backward, counts
        self.step_seconds = 0.0

    def optimizer_step(self, closure: Callable[[], Any] | None = None) -> Any:
        """``optimizer.step(closure)``, timed into :attr:`step_seconds` (closure calls included)."""
        started = time.perf_counter()
        try:
            return self.optimizer.step() if closure is None else self.optimizer.step(closure)
        finally:
            self.step_seconds = time.perf_counter() - started

    def forward(self, batch: Any) -> torch.Tensor:
        """The objective on ``batch``, counted as one loss evaluation."""
        self.counts.loss_evaluations += 1
        return self.objective(batch)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, counted as one gradient evaluation."""
        loss.backward()
        self.counts.gradient_evaluations += 1

    def gradient_closure(self, batch: Any, first: dict[str, Any]) -> Callable[[], torch.Tensor]:
        """A closure that zeroes, evaluates, backpropagates and clips; the first call fills ``first``."""

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.forward(batch)
            self.backward(loss)
            if not first:
                first["grad_norm"] = gradient_norm(self.parameters)
                first["loss"] = float(loss.detach())
            first["skip"] = self.after_backward()
            return loss

        return closure

    def step(self, batch: Any) -> StepOutcome:
        """One step (see the subclasses)."""
        raise NotImplementedError


class GradientStepper(Stepper):
    """``backward()`` then ``step()``."""

    def step(self, batch: Any) -> StepOutcome:
        """Zero, evaluate, backpropagate, clip, step (unless clipping asked to skip)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.forward(batch)
        self.backward(loss)
        grad_norm = gradient_norm(self.parameters)
        skipped = self.after_backward()
        self.step_seconds = 0.0
        if not skipped:
            self.optimizer_step()
        return StepOutcome(float(loss.detach()), grad_norm, skipped)


class ClosureStepper(Stepper):
    """``step(closure)`` with a closure that calls ``backward()``."""

    def step(self, batch: Any) -> StepOutcome:
        """Let the optimizer call the closure as often as it needs."""
        first: dict[str, Any] = {}
        self.optimizer_step(self.gradient_closure(batch, first))
        return StepOutcome(first.get("loss", math.nan), first.get("grad_norm"))


class ClosureNoBackwardStepper(Stepper):
    """``step(closure)`` with a closure that returns the loss without ``backward()`` (Newton)."""

    def step(self, batch: Any) -> StepOutcome:
        """One step; the gradient and Hessian-vector products the optimizer made are counted."""
        loss = self.optimizer_step(lambda: self.forward(batch))
        group = self.optimizer.param_groups[0]
        if group.get("mode") == "cg":
            products = int(getattr(self.optimizer, "last_cg_iterations", 0))
        else:
            products = sum(p.numel() for p in self.parameters)  # the exact Hessian, column by column
        self.counts.gradient_evaluations += 1 + HVP_COST * products
        grad_norm = getattr(self.optimizer, "last_gradient_norm", None)
        return StepOutcome(float(loss), grad_norm if grad_norm is None or math.isfinite(grad_norm) else None)


class SVRGStepper(Stepper):
    """A full-gradient snapshot when the optimizer needs one, then the variance-reduced step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.task.epoch_batches is None:
            raise ValueError(
                "SVRG needs a finite training set for its full-gradient snapshots, and this problem's "
                "task has none (no epoch_batches: it draws fresh noise every step); choose another problem"
            )

    def full_closure(self) -> torch.Tensor:
        """Zero, then accumulate the batch-size-weighted mean gradient over one pass of the data."""
        self.optimizer.zero_grad(set_to_none=True)
        total, count = 0.0, 0
        for batch in self.task.epoch_batches():
            size = len(batch[0]) if isinstance(batch, tuple | list) else 1
            loss = self.forward(batch) * size
            self.backward(loss)
            total, count = total + float(loss.detach()), count + size
        for parameter in self.parameters:
            if parameter.grad is not None:
                parameter.grad.div_(count)
        return torch.tensor(total / count)

    def step(self, batch: Any) -> StepOutcome:
        """Snapshot if due, then one corrected-gradient step."""
        if self.optimizer.needs_snapshot:
            self.optimizer.take_snapshot(self.full_closure)
        first: dict[str, Any] = {}
        self.optimizer_step(self.gradient_closure(batch, first))
        return StepOutcome(first.get("loss", math.nan), first.get("grad_norm"))


STEPPERS: dict[str, type[Stepper]] = {
    "gradient": GradientStepper,
    "closure": ClosureStepper,
    "closure-no-backward": ClosureNoBackwardStepper,
    "svrg": SVRGStepper,
}
"""The stepper of each step protocol."""


def stepper_for(protocol: str) -> type[Stepper]:
    """The stepper class of ``protocol``; an unknown protocol is an error naming the known ones."""
    try:
        return STEPPERS[protocol]
    except KeyError:
        raise ValueError(
            f"the lab has no stepper for step protocol {protocol!r}; known: {', '.join(STEPPERS)}"
        ) from None
