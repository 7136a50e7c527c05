"""Freezing for transfer learning: freeze/unfreeze by name or glob, gradual unfreezing, per-layer learning
rates, output-layer replacement, and adding parameters to a running optimizer without losing its state.

Patterns are :mod:`fnmatch` globs matched against module names *and* parameter names from
``model.named_modules()`` / ``named_parameters()``: ``"features"`` matches the module ``features`` (all its
parameters), ``"features.*"`` everything below it, ``"*.bias"`` every bias. A pattern that matches nothing
is an error, so a typo never silently trains the whole network.

References: Howard & Ruder, "Universal Language Model Fine-tuning for Text Classification" (ULMFiT), ACL
2018 (https://arxiv.org/abs/1801.06146): gradual unfreezing and discriminative fine-tuning with
:math:`\\eta^{l-1} = \\eta^{l} / 2.6`.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from descentlab.optim._validation import MAX_INTEGER, check_positive

__all__ = [
    "GradualUnfreezer",
    "add_parameters_to_optimizer",
    "discriminative_param_groups",
    "freeze",
    "match_parameters",
    "replace_output_layer",
    "unfreeze",
]


def _check_list(name: str, value: Any) -> None:
    """Refuse a ``value`` that is neither a str nor a list/tuple, before it is iterated."""
    if not isinstance(value, (str, list, tuple)):
        raise TypeError(f"{name} must be a name or a list of module/parameter names or globs, got {value!r}")


def _patterns(patterns: str | Sequence[str]) -> list[str]:
    _check_list("patterns", patterns)
    items = [patterns] if isinstance(patterns, str) else list(patterns)
    if not items or any(not isinstance(p, str) or not p for p in items):
        raise ValueError(f"patterns must be non-empty module/parameter names or globs, got {patterns!r}")
    return items


def match_parameters(model: nn.Module, patterns: str | Sequence[str]) -> dict[str, nn.Parameter]:
    """Parameters matched by ``patterns`` (module/parameter names or globs), by name, in model order.

    Raises:
        ValueError: if a pattern matches no module and no parameter; the message lists the top-level modules.
    """
    selected: dict[str, nn.Parameter] = {}
    for pattern in _patterns(patterns):
        hit = False
        for module_name, module in model.named_modules():
            if module_name and fnmatch.fnmatchcase(module_name, pattern):
                hit = True
                for local, parameter in module.named_parameters():
                    selected[f"{module_name}.{local}"] = parameter
        for name, parameter in model.named_parameters():
            if fnmatch.fnmatchcase(name, pattern):
                hit = True
                selected[name] = parameter
        if not hit:
            top = [name for name, _ in model.named_children()]
            raise ValueError(
                f"pattern {pattern!r} matches no module or parameter; top-level modules are {top}"
            )
    order = {id(p): i for i, p in enumerate(model.parameters())}
    unique = {}
    for name, parameter in selected.items():
        unique.setdefault(id(parameter), (name, parameter))
    return dict(sorted(unique.values(), key=lambda item: order.get(id(item[1]), math.inf)))


def freeze(model: nn.Module, patterns: str | Sequence[str]) -> list[str]:
    """Set ``requires_grad=False`` on the matched parameters; returns their names.

    Frozen parameters get no gradient, so every ``torch.optim`` optimizer skips them (no update, no weight
    decay, no state change). Batch-norm running statistics still update in train mode; call ``.eval()`` on
    those modules if they should stay fixed too.
    """
    matched = match_parameters(model, patterns)
    for parameter in matched.values():
        parameter.requires_grad_(False)
        # A gradient left over from before freezing would still be applied by the next optimizer step.
        parameter.grad = None
    return list(matched)


def unfreeze(model: nn.Module, patterns: str | Sequence[str]) -> list[str]:
    """Set ``requires_grad=True`` on the matched parameters; returns their names."""
    matched = match_parameters(model, patterns)
    for parameter in matched.values():
        parameter.requires_grad_(True)
    return list(matched)


def add_parameters_to_optimizer(
    optimizer: torch.optim.Optimizer, parameters: Iterable[torch.Tensor], **group_options: Any
) -> dict[str, Any] | None:
    """Add the parameters the optimizer does not hold yet as a new param group, keeping all existing state.

    ``torch.optim.Optimizer.add_param_group`` keeps ``optimizer.state`` for the parameters already there; this
    wrapper also skips parameters already held (``add_param_group`` would raise) and fills the new group's
    unspecified hyperparameters from the optimizer's defaults. Returns the new group, or ``None`` if every
    parameter was already held.
    """
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    new, seen = [], set()
    for p in parameters:
        if id(p) not in held and id(p) not in seen:
            new.append(p)
            seen.add(id(p))
    if not new:
        return None
    optimizer.add_param_group({"params": new, **group_options})
    return optimizer.param_groups[-1]


def discriminative_param_groups(
    model: nn.Module,
    layers: Sequence[str | Sequence[str]],
    lr: float,
    factor: float = 2.6,
    **group_options: Any,
) -> list[dict[str, Any]]:
    """Param groups with learning rates that shrink towards the input (ULMFiT's discriminative fine-tuning).

    ``layers`` lists layer names or globs from the *input* to the *output*; the last gets ``lr``, the one
    before ``lr / factor``, and so on: :math:`\\eta_k = \\eta / \\text{factor}^{L-1-k}`. Parameters of the
    model not matched by any entry go into one more group at ``lr`` (so nothing is silently left out of
    the optimizer). Frozen parameters are included; the optimizer skips them until they are unfrozen.
    """
    check_positive("lr", lr)
    check_positive("factor", factor)  # ULMFiT uses 2.6
    _check_list("layers", layers)
    for index, layer in enumerate(layers if isinstance(layers, (list, tuple)) else ()):
        _check_list(f"layers[{index}]", layer)
    if isinstance(layers, str) or not layers:
        raise ValueError(f"layers must be a non-empty list of names from input to output, got {layers!r}")
    claimed: set[int] = set()
    groups = []
    for k, layer in enumerate(layers):
        parameters = [p for p in match_parameters(model, layer).values() if id(p) not in claimed]
        if not parameters:
            raise ValueError(f"layers[{k}]={layer!r} has no parameters left (all claimed by earlier entries)")
        claimed.update(id(p) for p in parameters)
        groups.append({"params": parameters, "lr": lr / factor ** (len(layers) - 1 - k), **group_options})
    rest = [p for p in model.parameters() if id(p) not in claimed]
    if rest:
        groups.append({"params": rest, "lr": lr, **group_options})
    return groups


class GradualUnfreezer:
    """Unfreeze layer groups one at a time from the output towards the input (ULMFiT).

    At construction every parameter in ``stages`` is frozen except ``stages[0]``. Calling
    :meth:`on_epoch_start` with epoch ``e`` unfreezes ``stages[: e // epochs_per_stage + 1]`` and adds any
    of their parameters that the optimizer does not hold yet as new param groups (existing optimizer state is
    kept). Parameters outside all stages are not touched.

    Args:
        model: the model.
        optimizer: any ``torch.optim`` optimizer; it may hold all parameters already (frozen ones are skipped
            because they get no gradient) or only the trainable ones.
        stages: layer names/globs, output layer first, e.g. ``["head", "layer4", "layer3"]``.
        epochs_per_stage: epochs between two unfreezings (>= 1).
        group_options: hyperparameters for newly added groups, e.g. ``{"lr": 1e-4}``; per stage if a list.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        stages: Sequence[str | Sequence[str]],
        epochs_per_stage: int = 1,
        group_options: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    ) -> None:
        _check_list("stages", stages)
        for index, stage in enumerate(stages if isinstance(stages, (list, tuple)) else ()):
            _check_list(f"stages[{index}]", stage)
        if isinstance(stages, str) or not stages:
            raise ValueError(f"stages must be a non-empty list of layer names (output first), got {stages!r}")
        if not isinstance(epochs_per_stage, int) or epochs_per_stage < 1:
            raise ValueError(f"epochs_per_stage must be an int >= 1, got {epochs_per_stage!r}")
        if group_options is None or isinstance(group_options, dict):
            group_options = [dict(group_options or {})] * len(stages)
        if len(group_options) != len(stages):
            raise ValueError(
                f"group_options has {len(group_options)} entries for {len(stages)} stages; give one per stage"
            )
        self.model, self.optimizer = model, optimizer
        self.stages = list(stages)
        self.epochs_per_stage = epochs_per_stage
        self.group_options = list(group_options)
        self.unfrozen_stages = 0
        for stage in self.stages[1:]:
            freeze(model, stage)
        self._unfreeze_up_to(1)

    def _unfreeze_up_to(self, count: int) -> None:
        for index in range(self.unfrozen_stages, count):
            unfreeze(self.model, self.stages[index])
            parameters = match_parameters(self.model, self.stages[index]).values()
            add_parameters_to_optimizer(self.optimizer, parameters, **self.group_options[index])
        self.unfrozen_stages = max(self.unfrozen_stages, count)

    def on_epoch_start(self, epoch: int) -> int:
        """Unfreeze the stages due at ``epoch`` (0-based); returns how many stages are now trainable."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be an int >= 0, got {epoch!r}")
        self._unfreeze_up_to(min(len(self.stages), epoch // self.epochs_per_stage + 1))
        return self.unfrozen_stages


def replace_output_layer(model: nn.Module, name: str, out_features: int) -> nn.Linear:
    """Replace the ``nn.Linear`` at ``name`` (e.g. ``"fc"``, ``"classifier.3"``) by a fresh one.

    The new layer keeps ``in_features``, bias presence, device and dtype, with torch's default
    initialisation; it is trainable. Its parameters are new tensors: add them to an existing optimizer with
    :func:`add_parameters_to_optimizer` (the old layer's parameters stay in the optimizer, get no gradient and
    are never updated again).
    """
    if (
        isinstance(out_features, bool)
        or not isinstance(out_features, int)
        or not 1 <= out_features <= MAX_INTEGER
    ):
        raise ValueError(f"out_features must be an int in [1, 2**63 - 1], got {out_features!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a submodule path such as 'fc' or 'classifier.3', got {name!r}")
    try:
        old = model.get_submodule(name)
    except AttributeError as error:
        raise ValueError(
            f"name must be a submodule path such as 'fc', got {name!r}: the model has no submodule {name!r} "
            f"({error})"
        ) from None
    if not isinstance(old, nn.Linear):
        raise TypeError(
            f"replace_output_layer expects an nn.Linear at name={name!r}, found {type(old).__name__}"
        )
    new = nn.Linear(
        old.in_features,
        out_features,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    model.set_submodule(name, new)
    return new
