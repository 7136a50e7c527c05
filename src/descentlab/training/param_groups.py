"""Weight-decay param groups: decay the weights, not the biases or normalisation parameters.

The convention of timm (``timm.optim.create_optimizer_v2``, ``param_groups_weight_decay``) and Hugging Face
(``Trainer.get_decay_parameter_names``): biases, and the scale/shift of normalisation layers, are not decayed,
because shrinking them towards zero does not reduce capacity and can hurt (e.g. a LayerNorm gain pulled to 0).
Parameters named by the model's ``no_weight_decay()`` method (timm's hook; e.g. position embeddings) and any
glob pattern the caller lists are excluded too.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

from torch import nn

from descentlab.optim._validation import check_non_negative
from descentlab.training.freezing import match_parameters

__all__ = ["NORMALIZATION_LAYERS", "decay_parameter_names", "layer_indices", "weight_decay_param_groups"]

#: Module types whose parameters are never decayed.
NORMALIZATION_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm, Lazy variants
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)


def decay_parameter_names(
    model: nn.Module,
    no_decay: Sequence[str] = (),
    exclude_bias: bool = True,
    exclude_normalization: bool = True,
    exclude_one_dimensional: bool = False,
) -> set[str]:
    """Names of the parameters that should receive weight decay.

    A parameter is excluded if it is a bias (name ends in ``bias``) and ``exclude_bias``; if it belongs to a
    :data:`NORMALIZATION_LAYERS` module and ``exclude_normalization``; if ``model.no_weight_decay()`` returns
    its name; if its name matches a glob pattern in ``no_decay`` (e.g. ``"*.pos_embed"``); or, with
    ``exclude_one_dimensional`` (timm's rule ``ndim <= 1``), if it has at most one dimension.
    """
    if isinstance(no_decay, str):
        raise TypeError(f"no_decay takes a list of glob patterns, e.g. [{no_decay!r}], not a str")
    if not isinstance(no_decay, (list, tuple)) or not all(isinstance(p, str) for p in no_decay):
        raise TypeError(f"no_decay takes a list of glob patterns, e.g. ['*.pos_embed'], got {no_decay!r}")
    listed = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, NORMALIZATION_LAYERS)
        for local_name, parameter in module.named_parameters(recurse=False):
            name = f"{module_name}.{local_name}" if module_name else local_name
            if exclude_bias and local_name.endswith("bias"):
                continue
            if exclude_normalization and is_norm:
                continue
            if exclude_one_dimensional and parameter.ndim <= 1:
                continue
            if name in listed or any(fnmatch.fnmatchcase(name, pattern) for pattern in no_decay):
                continue
            decay.add(name)
    return decay


def layer_indices(
    model: nn.Module, layers: Sequence[str | Sequence[str]] | None = None
) -> tuple[dict[int, int], int]:
    """Each trainable parameter's layer, counted from the input: ``({id(parameter): index}, layer count)``.

    ``layers`` lists layer names or globs from the input to the output (as for
    :func:`~descentlab.training.discriminative_param_groups`); parameters it does not name belong to the
    last layer, the head, as in timm. Without ``layers`` every top-level child module with parameters is
    a layer, in registration order, and parameters held by the model itself (a position embedding, a
    class token) join the first one, as BEiT counts its embeddings as layer 0.
    """
    if layers is None:
        children = [child for _, child in model.named_children() if any(True for _ in child.parameters())]
        groups = [list(child.parameters()) for child in children]
        if not groups:
            groups = [[]]
        groups[0] = list(model.parameters(recurse=False)) + groups[0]
    else:
        if not isinstance(layers, (list, tuple)) or not layers:
            raise TypeError(f"layers must be a non-empty list of names from input to output, got {layers!r}")
        groups = [list(match_parameters(model, layer).values()) for layer in layers]
    index: dict[int, int] = {}
    for k, parameters in enumerate(groups):
        for parameter in parameters:
            index.setdefault(id(parameter), k)
    return index, len(groups)


def weight_decay_param_groups(
    model: nn.Module,
    weight_decay: float,
    no_decay: Sequence[str] = (),
    exclude_bias: bool = True,
    exclude_normalization: bool = True,
    exclude_one_dimensional: bool = False,
    *,
    layer_decay: float | None = None,
    layers: Sequence[str | Sequence[str]] | None = None,
    **group_options: Any,
) -> list[dict[str, Any]]:
    """Param groups for any ``torch.optim`` optimizer: decayed weights and everything else at 0.

    Frozen parameters (``requires_grad=False``) are left out, as timm does. Empty groups are dropped.
    ``group_options`` (e.g. ``lr=1e-3``) are copied into every group. The exclusion switches are those of
    :func:`decay_parameter_names`.

    Layer-wise lr decay (``layer_decay`` in (0, 1], BEiT / timm's ``param_groups_layer_decay``): layer
    ``k`` of ``L`` (see :func:`layer_indices`; ``layers`` as there) gets two groups with
    ``lr_scale = layer_decay ** (L - 1 - k)``, so the head keeps the full rate. With ``lr`` in
    ``group_options`` each group starts at ``lr * lr_scale`` and keeps the unscaled ``lr`` as
    ``initial_lr``: right with no scheduler, with descentlab's schedulers and with timm's (those apply
    ``lr_scale`` to the scheduled rate); torch's schedulers ignore ``lr_scale``.

    Example:
        >>> groups = weight_decay_param_groups(model, weight_decay=0.05)  # doctest: +SKIP
        >>> optimizer = torch.optim.AdamW(groups, lr=1e-3)  # doctest: +SKIP
    """
    check_non_negative("weight_decay", weight_decay)
    if layer_decay is not None and not (isinstance(layer_decay, (int, float)) and 0 < layer_decay <= 1):
        raise ValueError(
            f"layer_decay must be a number in (0, 1] (timm's examples use 0.65-0.75), got {layer_decay!r}"
        )
    decay_names = decay_parameter_names(
        model, no_decay, exclude_bias, exclude_normalization, exclude_one_dimensional
    )
    layer_of, layer_count = layer_indices(model, layers) if layer_decay is not None else ({}, 1)
    buckets: dict[tuple[int, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            layer = layer_of.get(id(parameter), layer_count - 1)
            buckets.setdefault((layer, name in decay_names), []).append(parameter)
    groups = []
    for layer in range(layer_count):
        for decayed in (True, False):
            if (layer, decayed) not in buckets:
                continue
            group = {
                "params": buckets[layer, decayed],
                "weight_decay": float(weight_decay) if decayed else 0.0,
            }
            group.update(group_options)
            if layer_decay is not None:
                group.update(_layer_scaled(group_options, layer_decay ** (layer_count - 1 - layer)))
            groups.append(group)
    return groups


def _layer_scaled(group_options: dict[str, Any], scale: float) -> dict[str, Any]:
    """The ``lr_scale`` entry of one layer's groups, and its pre-scaled ``lr`` when ``lr`` is given."""
    if "lr" not in group_options:
        return {"lr_scale": scale}
    lr = group_options["lr"]
    return {"lr_scale": scale, "lr": lr * scale, "initial_lr": lr}
