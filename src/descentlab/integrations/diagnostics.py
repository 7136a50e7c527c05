"""What an optimizer step did, per param group, measured through torch's optimizer step hooks.

One implementation behind the Lightning and Hugging Face callbacks (and usable in a plain loop): a
step pre-hook copies the parameters, the post-hook compares. Metrics, per group ``i``:

- ``descentlab/group{i}/update_norm``: :math:`\\|\\Delta\\theta\\|_2` of the step.
- ``descentlab/group{i}/effective_step_size``: :math:`-\\langle\\Delta\\theta, g\\rangle / \\|g\\|^2`, the
  learning rate of the plain gradient step with the same progress along :math:`-g` (``lr`` for SGD
  without momentum; Adam's moves far from its ``lr``).
- ``descentlab/group{i}/grad_to_update_ratio``: :math:`\\|g\\| / \\|\\Delta\\theta\\|` (``1 / lr`` for SGD).
- ``descentlab/line_search/step_size``: the step size :class:`~descentlab.optim.LineSearchGD` accepted.
- ``descentlab/swats/group{i}/switch_step`` and ``.../sgd_lr``: :class:`~descentlab.optim.SWATS`'s switch
  to SGD and its learned rate, once switched (``per-tensor`` groups: ``switched_fraction``).

The gradient metrics read ``.grad`` after the step, the gradient at the start point for optimizers
whose ``step_protocol`` is ``"gradient"`` (also when a trainer such as Lightning computes it in a
closure inside ``step``); a closure optimizer such as ``LineSearchGD`` leaves the gradient of a trial
point there, so it gets ``update_norm`` only. Parameters without a gradient are left out. Copying the
parameters costs one model's worth of memory on measured steps: ``every_n_steps`` keeps that rare on
large models.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from descentlab.optim.registry import step_protocol

__all__ = ["StepDiagnostics", "innermost_optimizer"]

PREFIX = "descentlab/"


def innermost_optimizer(optimizer: Any) -> Optimizer:
    """The torch optimizer inside framework wrappers (accelerate's ``AcceleratedOptimizer``, Lightning's
    ``LightningOptimizer``), which is where the step hooks fire."""
    seen = set()
    while hasattr(optimizer, "optimizer") and id(optimizer) not in seen:
        seen.add(id(optimizer))
        optimizer = optimizer.optimizer
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"expected a torch.optim.Optimizer (or a wrapper of one), got {type(optimizer).__name__}"
        )
    return optimizer


def _real(tensor: Tensor) -> Tensor:
    return torch.view_as_real(tensor) if torch.is_complex(tensor) else tensor


def _dot(first: list[Tensor], second: list[Tensor]) -> float:
    # float64 sums: a norm of millions of float32 squares loses digits otherwise.
    return float(sum((_real(a).double() * _real(b).double()).sum() for a, b in zip(first, second)))


class StepDiagnostics:
    """Measure every ``every_n_steps``-th ``optimizer.step()``; the metrics of the last one are in ``latest``.

    Args:
        optimizer: any ``torch.optim.Optimizer``, or a framework wrapper around one.
        every_n_steps: measure one step in this many (>= 1), counting from the first.

    Attributes:
        latest: ``{metric name: value}`` of the last measured step (names in the module docstring).
        measured_steps: how many steps were measured; a callback logs ``latest`` when it grows.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> diagnostics = StepDiagnostics(torch.optim.SGD(model.parameters(), lr=0.1))
        >>> model(torch.ones(1, 3)).sum().backward(); diagnostics.optimizer.step()
        >>> round(diagnostics.latest["descentlab/group0/effective_step_size"], 6)
        0.1
    """

    def __init__(self, optimizer: Any, every_n_steps: int = 1) -> None:
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"every_n_steps must be an int >= 1, got {every_n_steps!r}")
        self.optimizer = innermost_optimizer(optimizer)
        self.every_n_steps = every_n_steps
        self.latest: dict[str, float] = {}
        self.measured_steps = 0
        self._steps = 0
        self._before: list[list[Tensor]] | None = None
        self._gradient_protocol = step_protocol(type(self.optimizer)) == "gradient"
        self._handles = [
            self.optimizer.register_step_pre_hook(self._before_step),
            self.optimizer.register_step_post_hook(self._after_step),
        ]

    def remove(self) -> None:
        """Detach from the optimizer (the hooks stop measuring)."""
        for handle in self._handles:
            handle.remove()

    def _before_step(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        self._steps += 1
        if (self._steps - 1) % self.every_n_steps:
            self._before = None
            return
        with torch.no_grad():
            self._before = [[p.detach().clone() for p in group["params"]] for group in optimizer.param_groups]

    def _after_step(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        if self._before is None:
            return
        metrics: dict[str, float] = {}
        with torch.no_grad():
            for index, (group, start) in enumerate(zip(optimizer.param_groups, self._before)):
                pairs = [(p, s) for p, s in zip(group["params"], start) if p.grad is not None]
                update = [p.detach() - s for p, s in pairs]
                # A gradient step leaves .grad as the gradient at the start point (also when a trainer
                # passes a closure that computes it inside step); a closure optimizer's last .grad is
                # at some trial point, so it gets no gradient metrics.
                grads = [p.grad for p, _ in pairs] if self._gradient_protocol else None
                metrics.update(_group_metrics(f"{PREFIX}group{index}/", update, grads))
        metrics.update(_optimizer_metrics(optimizer))
        self._before = None
        self.latest = metrics
        self.measured_steps += 1


def _group_metrics(prefix: str, update: list[Tensor], grads: list[Tensor] | None) -> dict[str, float]:
    update_norm = math.sqrt(_dot(update, update))
    metrics = {prefix + "update_norm": update_norm}
    if grads:
        grad_norm_squared = _dot(grads, grads)
        if grad_norm_squared > 0:
            metrics[prefix + "effective_step_size"] = -_dot(update, grads) / grad_norm_squared
        if update_norm > 0:
            metrics[prefix + "grad_to_update_ratio"] = math.sqrt(grad_norm_squared) / update_norm
    return metrics


def _optimizer_metrics(optimizer: Optimizer) -> dict[str, float]:
    """What only some optimizers know, read from what they declare (LineSearchGD, SWATS)."""
    metrics = {}
    if getattr(optimizer, "step_sizes", None):
        metrics[PREFIX + "line_search/step_size"] = float(optimizer.step_sizes[-1])
    if hasattr(optimizer, "switch_steps") and hasattr(optimizer, "sgd_learning_rates"):
        for index, (step, rate) in enumerate(zip(optimizer.switch_steps(), optimizer.sgd_learning_rates())):
            prefix = f"{PREFIX}swats/group{index}/"
            if isinstance(step, dict):  # "per-tensor": one switch per tensor
                metrics[prefix + "switched_fraction"] = sum(s is not None for s in step.values()) / len(step)
            elif step is not None:
                metrics[prefix + "switch_step"] = float(step)
                metrics[prefix + "sgd_lr"] = float(rate)
    return metrics
