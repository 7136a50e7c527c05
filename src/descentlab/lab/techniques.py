"""The training techniques of a run, built from its spec through :mod:`descentlab.training`'s public API.

Keys (see :data:`descentlab.lab.fields.TECHNIQUES`): gradient clipping by norm or value with a
non-finite policy; a max-norm constraint; L1 and L2 penalties added to the loss (on the parameters that
weight decay would reach); proximal L1; which parameters weight decay reaches (``decay_groups``:
biases and normalisation parameters are left out unless ``all``); freezing layers and thawing them at a
step. Early stopping and the gradient-norm stop are stopping rules the runner applies.

A technique that does not fit the problem's model fails with the library's own error (for example
max-norm on a 2-D function: "no layer to constrain").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from descentlab import training
from descentlab.training.param_groups import decay_parameter_names


class Techniques:
    """The techniques of one run over ``model``.

    Args:
        settings: the spec's technique dict.
        model: the task's model.
    """

    def __init__(self, settings: dict[str, Any], model: nn.Module) -> None:
        self.settings = dict(settings)
        self.model = model
        self.frozen: list[str] = []
        if "unfreeze_at" in self.settings and "freeze" not in self.settings:
            raise ValueError("unfreeze_at needs freeze=LAYERS (which layers to freeze until then)")
        if "freeze" in self.settings:
            patterns = list(self.settings["freeze"])
            try:
                self.frozen = training.freeze(model, patterns)
            except ValueError as error:  # say which setting held the pattern
                raise ValueError(f"freeze={','.join(patterns)}: {error}") from None
        decay_all = self.settings.get("decay_groups") == "all"
        names = {name for name, _ in model.named_parameters()} if decay_all else decay_parameter_names(model)
        self.decayed = [p for name, p in model.named_parameters() if name in names]
        self.named = list(model.named_parameters())

    def parameter_groups(self, hyperparameters: dict[str, Any]) -> list[Any]:
        """What to pass to the optimizer: no-decay groups when weight decay is on, else the params."""
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        decay = hyperparameters.get("weight_decay", 0)
        if not decay or self.settings.get("decay_groups") == "all":
            return trainable
        decayed_ids = {id(p) for p in self.decayed}
        groups = [
            {"params": [p for p in trainable if id(p) in decayed_ids]},
            {"params": [p for p in trainable if id(p) not in decayed_ids], "weight_decay": 0.0},
        ]
        return [group for group in groups if group["params"]]

    def penalty(self) -> torch.Tensor | None:
        """L1 + L2 penalties on the decayed parameters, or ``None`` when neither is set."""
        terms = []
        if self.settings.get("l1"):
            terms.append(training.l1_penalty(self.decayed, self.settings["l1"]))
        if self.settings.get("l2"):
            terms.append(training.l2_penalty(self.decayed, self.settings["l2"]))
        return sum(terms) if terms else None

    def clip(self) -> bool:
        """Clip the gradients now; returns True when the non-finite policy says to skip the step."""
        policy = self.settings.get("nonfinite", "raise")
        if "clip_norm" in self.settings:
            result = training.clip_grad_norm(self.named, self.settings["clip_norm"], nonfinite=policy)
            return result.skip_step
        if "clip_value" in self.settings:
            result = training.clip_grad_value(self.named, self.settings["clip_value"], nonfinite=policy)
            return result.skip_step
        return False

    def attach(self, optimizer: Optimizer) -> None:
        """Hooks that run after every optimizer step: max-norm and proximal L1."""
        if "max_norm" in self.settings:
            training.attach_max_norm(optimizer, self.model, self.settings["max_norm"])
        if self.settings.get("proximal_l1"):
            held = {id(p) for group in optimizer.param_groups for p in group["params"]}
            chosen = [p for p in self.decayed if id(p) in held]
            training.ProximalL1(optimizer, self.settings["proximal_l1"], parameters=chosen).attach()

    def after_step(self, step: int, optimizer: Optimizer) -> None:
        """Thaw the frozen layers at ``unfreeze_at`` and hand them to the optimizer (state kept)."""
        if self.frozen and step == self.settings.get("unfreeze_at"):
            training.unfreeze(self.model, list(self.settings["freeze"]))
            parameters = [p for name, p in self.named if name in set(self.frozen)]
            training.add_parameters_to_optimizer(optimizer, parameters)
            self.frozen = []
