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

__all__ = ["NORMALIZATION_LAYERS", "decay_parameter_names", "weight_decay_param_groups"]

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


def weight_decay_param_groups(
    model: nn.Module,
    weight_decay: float,
    no_decay: Sequence[str] = (),
    exclude_bias: bool = True,
    exclude_normalization: bool = True,
    exclude_one_dimensional: bool = False,
    **group_options: Any,
) -> list[dict[str, Any]]:
    """Two param groups for any ``torch.optim`` optimizer: decayed weights and everything else at 0.

    Frozen parameters (``requires_grad=False``) are left out, as timm does. Empty groups are dropped.
    ``group_options`` (e.g. ``lr=1e-3``) are copied into both groups. The exclusion switches are those of
    :func:`decay_parameter_names`.

    Example:
        >>> groups = weight_decay_param_groups(model, weight_decay=0.05)  # doctest: +SKIP
        >>> optimizer = torch.optim.AdamW(groups, lr=1e-3)  # doctest: +SKIP
    """
    check_non_negative("weight_decay", weight_decay)
    decay_names = decay_parameter_names(
        model, no_decay, exclude_bias, exclude_normalization, exclude_one_dimensional
    )
    decayed, not_decayed = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (decayed if name in decay_names else not_decayed).append(parameter)
    groups = [
        {"params": decayed, "weight_decay": float(weight_decay), **group_options},
        {"params": not_decayed, "weight_decay": 0.0, **group_options},
    ]
    return [group for group in groups if group["params"]]
