"""Optional per-run measurements for the textbook experiments (``record=...`` in a spec).

- ``layer_grad_norms``: the 2-norm of each parameter's gradient, at every evaluation step;
- ``activations``: per activation layer (ReLU, sigmoid, tanh, ...), the mean and std of its outputs,
  the fraction saturated (sigmoid outside [0.01, 0.99], tanh and softsign beyond ±0.99) and the
  fraction dead (exactly 0: ReLU family), on the training minibatch of every evaluation step;
- ``preactivations``: per activation layer, the mean and std of what enters it (the linear layer's
  output, or the batch norm's where one sits in between), at the same steps as ``activations``;
- ``histograms``: a 40-bin histogram of each activation layer's outputs at ``histogram_steps``
  (default: the first and the last step);
- ``line_search``: the step sizes a line-search optimizer tried, their losses and the one it took,
  at every step (``optimizer.last_search``, or its accepted step size when it keeps no trials).

The effective step size (update norm / gradient norm) needs no instrument: every step record has both.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim import Optimizer

from descentlab.lab.records import InstrumentRecord

ACTIVATION_TYPES = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Softsign,
)
HISTOGRAM_BINS = 40
_DEAD_TYPES = (nn.ReLU,)


def _saturated(module: nn.Module, output: torch.Tensor) -> float | None:
    if isinstance(module, nn.Sigmoid):
        return float(((output < 0.01) | (output > 0.99)).float().mean())
    if isinstance(module, nn.Tanh | nn.Softsign):
        return float((output.abs() > 0.99).float().mean())
    return None


def activation_statistics(module: nn.Module, output: torch.Tensor) -> dict[str, float | None]:
    """Mean, std, fraction saturated and fraction dead of one layer's outputs."""
    values = output.detach().float()
    return {
        "mean": float(values.mean()),
        "std": float(values.std()) if values.numel() > 1 else 0.0,
        "saturated": _saturated(module, values),
        "dead": float((values == 0).float().mean()) if isinstance(module, _DEAD_TYPES) else None,
    }


def preactivation_statistics(inputs: torch.Tensor) -> dict[str, float]:
    """Mean and std of what enters one activation layer."""
    values = inputs.detach().float()
    return {
        "mean": float(values.mean()),
        "std": float(values.std()) if values.numel() > 1 else 0.0,
    }


def histogram(output: torch.Tensor) -> dict[str, list[float]]:
    """A fixed-bin histogram of the finite outputs (edges and counts)."""
    values = output.detach().double().reshape(-1).numpy()
    values = values[np.isfinite(values)]
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


class Instruments:
    """The measurements one run asked for, collected as :class:`InstrumentRecord` entries.

    Args:
        settings: the spec's record dict (``record``: kinds; ``histogram_steps``).
        model: the model whose layers are observed.
        total_steps: the run's budget (for the default histogram steps).
    """

    def __init__(self, settings: dict[str, Any], model: nn.Module, total_steps: int) -> None:
        self.kinds = set(settings.get("record", ()))
        self.histogram_steps = set(settings.get("histogram_steps", (1, total_steps)))
        self.model = model
        self.records: list[InstrumentRecord] = []
        self.layers = [
            (name or type(module).__name__, module)
            for name, module in model.named_modules()
            if isinstance(module, ACTIVATION_TYPES)
        ]
        if self.kinds & {"activations", "preactivations", "histograms"} and not self.layers:
            raise ValueError(
                "record=activations/preactivations/histograms needs a model with activation layers; "
                f"{type(model).__name__} has none"
            )

    def observes_forward(self, step: int, evaluated: bool) -> bool:
        """Whether the forward pass of ``step`` should be watched."""
        wants_stats = bool(self.kinds & {"activations", "preactivations"}) and evaluated
        return wants_stats or ("histograms" in self.kinds and step in self.histogram_steps)

    def watch(self, step: int, evaluated: bool) -> list[Any]:
        """Register forward hooks for ``step``; returns the handles to remove after the forward."""
        if not self.observes_forward(step, evaluated):
            return []
        seen: dict[str, dict[str, Any]] = {"activations": {}, "preactivations": {}, "histograms": {}}
        wanted = {
            "activations": "activations" in self.kinds and evaluated,
            "preactivations": "preactivations" in self.kinds and evaluated,
            "histograms": "histograms" in self.kinds and step in self.histogram_steps,
        }

        def hook_for(name: str):
            def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
                if any(name in values for values in seen.values()):
                    return  # a closure optimizer runs the forward many times: keep the first
                if wanted["activations"]:
                    seen["activations"][name] = activation_statistics(module, output)
                if wanted["preactivations"]:
                    seen["preactivations"][name] = preactivation_statistics(inputs[0])
                if wanted["histograms"]:
                    seen["histograms"][name] = histogram(output)

            return hook

        handles = [module.register_forward_hook(hook_for(name)) for name, module in self.layers]
        self._pending = (step, seen)
        return handles

    def finish_watch(self, handles: list[Any]) -> None:
        """Remove the hooks and keep what they saw."""
        for handle in handles:
            handle.remove()
        if not handles:
            return
        step, seen = self._pending
        for kind, values in seen.items():
            if values:
                self.records.append(InstrumentRecord(step, kind, values))

    def after_backward(self, step: int, evaluated: bool) -> None:
        """Per-parameter gradient norms at evaluation steps."""
        if "layer_grad_norms" not in self.kinds or not evaluated:
            return
        norms = {
            name: float(torch.linalg.vector_norm(p.grad))
            for name, p in self.model.named_parameters()
            if p.grad is not None
        }
        self.records.append(InstrumentRecord(step, "layer_grad_norms", norms))

    def after_step(self, step: int, optimizer: Optimizer) -> None:
        """The line search's trials of this step."""
        if "line_search" not in self.kinds:
            return
        search = getattr(optimizer, "last_search", None)
        if search is None:
            size = getattr(optimizer, "last_step_size", None)
            if size is None:
                raise ValueError(
                    f"record=line_search needs a line-search optimizer; {type(optimizer).__name__} "
                    "keeps no line-search record"
                )
            search = {"accepted": size}
        self.records.append(InstrumentRecord(step, "line_search", _json_ready(search)))


def _json_ready(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _json_ready(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, torch.Tensor):
        return _json_ready(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
