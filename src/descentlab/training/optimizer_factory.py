"""``create_optimizer``: a model-aware optimizer in one call (no decay on biases and norms, layer-wise lr).

The one-line recipe of timm's ``create_optimizer_v2`` and the Hugging Face Trainer, for descentlab's
optimizers and torch's: names resolve through :mod:`descentlab.optim.registry` (case-insensitive, close
matches suggested), param groups come from :func:`~descentlab.training.weight_decay_param_groups`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from torch import nn
from torch.optim import Optimizer

from descentlab.optim.registry import make_optimizer, passes_on_keywords, resolve_optimizer_class
from descentlab.training.param_groups import weight_decay_param_groups

__all__ = ["create_optimizer"]

#: ``no_decay`` rules by name: the exclusion switches of ``decay_parameter_names``.
NO_DECAY_RULES = {
    # timm's rule (every parameter with at most one dimension) plus biases and normalisation layers by
    # name and type, so a 2-D normalisation weight is not decayed either.
    "bias_and_norm": {"exclude_bias": True, "exclude_normalization": True, "exclude_one_dimensional": True},
}


def create_optimizer(
    name_or_class: str | type[Optimizer],
    model_or_params: nn.Module | Any,
    lr: float | None = None,
    weight_decay: float = 0.0,
    *,
    no_decay: str | Sequence[str] = "bias_and_norm",
    layer_decay: float | None = None,
    layers: Sequence[str | Sequence[str]] | None = None,
    **hyperparameters: Any,
) -> Optimizer:
    """Build an optimizer for a model: decoupled groups for weight decay, optional layer-wise lr decay.

    Args:
        name_or_class: a descentlab optimizer name (``"adamw"``, ``"RAdam"``; case-insensitive, a typo
            lists close matches) or any ``torch.optim.Optimizer`` subclass (torch's too).
        model_or_params: an ``nn.Module`` (grouped as below; frozen parameters left out) or parameters /
            param groups, passed through unchanged as torch does (``weight_decay`` then applies to all).
        lr: the learning rate; ``None`` keeps the optimizer's default.
        weight_decay: decay of the decayed group; the other group gets 0.
        no_decay: ``"bias_and_norm"`` (timm's and Hugging Face's rule: biases, normalisation parameters,
            every parameter with at most one dimension), or a list of glob patterns of names not to decay
            (``[]`` decays everything). Names the model's ``no_weight_decay()`` returns are never decayed.
        layer_decay: layer-wise lr decay factor in (0, 1]: groups carry ``lr_scale = layer_decay ** (L-1-k)``
            for layer ``k`` of ``L`` and start at ``lr * lr_scale`` (details and schedulers:
            :func:`~descentlab.training.weight_decay_param_groups`).
        layers: the layers for ``layer_decay``, names or globs from input to output (default: the
            model's top-level children).
        hyperparameters: further constructor keywords (``betas``, ``momentum``, ``variant``, ...).

    Example:
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
        >>> optimizer = create_optimizer("adamw", model, lr=1e-3, weight_decay=0.05)
        >>> [group["weight_decay"] for group in optimizer.param_groups]
        [0.05, 0.0]
    """
    cls = resolve_optimizer_class(name_or_class)
    takes_decay = "weight_decay" in inspect.signature(cls).parameters or passes_on_keywords(cls)  # wrappers
    if weight_decay and not takes_decay:
        raise ValueError(f"{cls.__name__} takes no weight_decay; got weight_decay={weight_decay!r}, pass 0")
    if not isinstance(model_or_params, nn.Module):
        if layer_decay is not None:
            raise ValueError(
                "layer_decay needs the model to find its layers: pass the nn.Module, not parameters"
            )
        return make_optimizer(
            cls, model_or_params, **_with(lr=lr, weight_decay=weight_decay or None), **hyperparameters
        )
    lr = _default_lr(cls) if lr is None and layer_decay is not None else lr
    if weight_decay == 0 and layer_decay is None:
        params = [p for p in model_or_params.parameters() if p.requires_grad]
        return make_optimizer(cls, params, **_with(lr=lr), **hyperparameters)
    groups = weight_decay_param_groups(
        model_or_params,
        weight_decay,
        **_no_decay_switches(no_decay),
        layer_decay=layer_decay,
        layers=layers,
        **_with(lr=lr if layer_decay is not None else None),
    )
    return make_optimizer(cls, groups, **_with(lr=lr), **hyperparameters)


def _with(**values: Any) -> dict[str, Any]:
    """The keywords that were given (not ``None``): an unset one keeps the optimizer's own default."""
    return {key: value for key, value in values.items() if value is not None}


def _no_decay_switches(no_decay: str | Sequence[str]) -> dict[str, Any]:
    if isinstance(no_decay, str):
        if no_decay not in NO_DECAY_RULES:
            raise ValueError(
                f"no_decay must be one of {sorted(NO_DECAY_RULES)} or a list of glob patterns, "
                f"got {no_decay!r}"
            )
        return dict(NO_DECAY_RULES[no_decay])
    if not isinstance(no_decay, (list, tuple)) or not all(isinstance(p, str) for p in no_decay):
        raise TypeError(
            f"no_decay must be one of {sorted(NO_DECAY_RULES)} or a list of glob patterns, got {no_decay!r}"
        )
    return {
        "no_decay": list(no_decay),
        "exclude_bias": False,
        "exclude_normalization": False,
        "exclude_one_dimensional": False,
    }


def _default_lr(cls: type[Optimizer]) -> float:
    """The constructor's default ``lr``: layer decay needs a number to scale."""
    default = inspect.signature(cls).parameters.get("lr")
    if default is None or not isinstance(default.default, (int, float)):
        raise ValueError(f"{cls.__name__} has no default lr; pass lr= to create_optimizer to use layer_decay")
    return float(default.default)
