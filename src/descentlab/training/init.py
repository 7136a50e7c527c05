"""Weight initialisation chosen by the activation that follows the layer.

Every scheme draws weights with variance :math:`\\sigma^2 = \\text{scale} / \\text{fan}`:

==========  ===============================================  =========  ========================
scheme      activations                                      fan        scale
==========  ===============================================  =========  ========================
Glorot      none/linear, tanh, sigmoid, softmax              fan_avg    1
He          relu, leaky_relu (slope a), prelu, elu, gelu,    fan_in     2 / (1 + a^2)
            silu/swish, mish, relu6
LeCun       selu                                             fan_in     1
==========  ===============================================  =========  ========================

with :math:`\\text{fan\\_avg} = (\\text{fan\\_in} + \\text{fan\\_out}) / 2`. Normal: :math:`w \\sim
\\mathcal N(0, \\sigma^2)`; uniform: :math:`w \\sim U(-\\sqrt{3}\\sigma, \\sqrt{3}\\sigma)`.
For a ConvNd weight ``(out, in/groups, *k)``, fan_in = ``in/groups * prod(k)`` and
fan_out = ``out/groups * prod(k)``.

References: Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural networks",
AISTATS 2010; He et al., "Delving Deep into Rectifiers", ICCV 2015 (https://arxiv.org/abs/1502.01852);
LeCun et al., "Efficient BackProp", 1998; Klambauer et al., "Self-Normalizing Neural Networks", 2017;
the table follows Géron, *Hands-On Machine Learning*, 3rd ed., Table 11-1.

Note: torch's ``calculate_gain("tanh") = 5/3`` and ``calculate_gain("selu") = 3/4`` differ from these
published schemes; we follow the papers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

__all__ = ["InitScheme", "compute_fans", "init_for_activation", "init_scheme_for", "init_weight_"]

_GLOROT = {"linear", "identity", "none", "tanh", "sigmoid", "softmax"}
_HE = {"relu", "leaky_relu", "prelu", "elu", "gelu", "silu", "swish", "mish", "relu6"}
_LECUN = {"selu"}
_MODULE_NAMES = {
    nn.Identity: "identity",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.Softmax: "softmax",
    nn.ReLU: "relu",
    nn.LeakyReLU: "leaky_relu",
    nn.PReLU: "prelu",
    nn.ELU: "elu",
    nn.GELU: "gelu",
    nn.SiLU: "silu",
    nn.Mish: "mish",
    nn.ReLU6: "relu6",
    nn.SELU: "selu",
}
Mode = Literal["fan_in", "fan_out", "fan_avg"]


@dataclass(frozen=True)
class InitScheme:
    """A variance rule :math:`\\sigma^2 = \\text{scale}/\\text{fan}`; ``name`` is Glorot, He or LeCun."""

    name: str
    mode: Mode
    scale: float


def init_scheme_for(
    activation: str | nn.Module | type[nn.Module], negative_slope: float | None = None
) -> InitScheme:
    """The published scheme for ``activation`` (a name, an activation module, or its class).

    For ``leaky_relu`` the slope comes from ``negative_slope``, else from the module, else torch's 0.01.
    """
    slope = negative_slope
    if isinstance(activation, nn.Module):
        if isinstance(activation, nn.LeakyReLU) and slope is None:
            slope = activation.negative_slope
        activation = type(activation)
    if isinstance(activation, type):
        name = _MODULE_NAMES.get(activation)
        if name is None:
            raise ValueError(
                f"no init rule for activation module {activation.__name__}; pass its name instead"
            )
    elif isinstance(activation, str):
        name = activation.lower()
    else:
        raise TypeError(f"activation must be a name or an nn.Module, got {type(activation).__name__}")
    if name in _GLOROT:
        return InitScheme("glorot", "fan_avg", 1.0)
    if name in _LECUN:
        return InitScheme("lecun", "fan_in", 1.0)
    if name in _HE:
        if name == "leaky_relu":
            a = 0.01 if slope is None else float(slope)
        elif name == "prelu":
            a = 0.25 if slope is None else float(slope)  # nn.PReLU's initial slope
        else:
            a = 0.0
        return InitScheme("he", "fan_in", 2.0 / (1.0 + a * a))
    known = sorted(_GLOROT | _HE | _LECUN)
    raise ValueError(f"unknown activation {name!r}; known: {known}")


def compute_fans(weight: torch.Tensor, groups: int = 1) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a Linear ``(out, in)`` or ConvNd ``(out, in/groups, *k)`` weight."""
    if weight.ndim < 2:
        raise ValueError(f"fans need a weight with >= 2 dimensions, got shape {tuple(weight.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, int) or not 1 <= groups <= weight.shape[0]:
        raise ValueError(
            f"groups must be an int in [1, {weight.shape[0]}] (the output channels), got {groups!r}"
        )
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] // groups * receptive


@torch.no_grad()
def init_weight_(
    weight: torch.Tensor,
    activation: str | nn.Module | type[nn.Module],
    distribution: Literal["normal", "uniform"] = "normal",
    mode: Mode | None = None,
    negative_slope: float | None = None,
    groups: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill ``weight`` in place by the scheme for ``activation``; ``mode`` overrides the scheme's fan."""
    scheme = init_scheme_for(activation, negative_slope)
    fan_in, fan_out = compute_fans(weight, groups)
    mode = mode or scheme.mode
    fans = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}
    if not isinstance(mode, str) or mode not in fans:
        raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
    std = math.sqrt(scheme.scale / fans[mode])
    if distribution == "normal":
        return weight.normal_(0.0, std, generator=generator)
    if distribution == "uniform":
        bound = math.sqrt(3.0) * std
        return weight.uniform_(-bound, bound, generator=generator)
    raise ValueError(f"distribution must be 'normal' or 'uniform', got {distribution!r}")


_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def init_for_activation(
    model: nn.Module,
    activation: str | nn.Module | type[nn.Module],
    distribution: Literal["normal", "uniform"] = "normal",
    mode: Mode | None = None,
    negative_slope: float | None = None,
    zero_bias: bool = True,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Initialise every ``Linear`` and ``ConvNd`` weight of ``model`` for ``activation`` in one call.

    Biases are set to zero when ``zero_bias``. Other modules (normalisation, embeddings, ...) keep their
    own initialisation. Returns the names of the initialised layers.

    Raises:
        ValueError: if the model has no Linear or ConvNd layer.
    """
    names = []
    for name, module in model.named_modules():
        if isinstance(module, _LAYERS):
            groups = getattr(module, "groups", 1)
            init_weight_(module.weight, activation, distribution, mode, negative_slope, groups, generator)
            if zero_bias and module.bias is not None:
                with torch.no_grad():
                    module.bias.zero_()
            names.append(name)
    if not names:
        raise ValueError(f"{type(model).__name__} has no Linear or ConvNd layer to initialise")
    return names
