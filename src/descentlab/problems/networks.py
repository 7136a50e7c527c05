"""The small networks the learning problems train: an MLP and 1-D / 2-D convolutional nets.

All take flat inputs (one row per example) so every problem shares one data layout; the
convolutional nets reshape internally. Each builder takes the model options a problem exposes
(:data:`MLP_OPTIONS`, :data:`CNN_OPTIONS`, :data:`LINEAR_OPTIONS`), whose defaults build exactly the
original networks (ReLU, no normalisation, no dropout, torch's own initialisation):

* ``activation``: one of :data:`ACTIVATIONS` (``relu``, ``leaky_relu`` with torch's slope 0.01,
  ``elu``, ``selu``, ``gelu``, ``tanh``, ``sigmoid``), after every hidden layer.
* ``batch_norm``: ``BatchNorm1d`` / ``BatchNorm2d`` between every hidden layer and its activation.
* ``dropout`` (MLPs only): a probability in [0, 1); ``nn.Dropout`` after every hidden activation (plain
  dropout also for ``selu``, not alpha dropout).
* ``init``: ``"default"`` (torch's own), ``"glorot"`` (alias ``"xavier"``), ``"he"``, ``"lecun"``
  (every Linear/Conv weight by that scheme of :mod:`descentlab.training.init`, normal distribution),
  ``"auto"`` (each hidden layer by the scheme matched to ``activation``, the output layer by Glorot,
  as the layer feeding a softmax), or a positive float ``std`` (every weight ``~ N(0, std^2)``). Every
  choice but ``"default"`` sets biases to zero.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import nn

from descentlab.problems.base import OptionDomain
from descentlab.training.init import init_weight_

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
INIT_NAMES = ("default", "glorot", "xavier", "he", "lecun", "auto")
# The activation whose published scheme each named init is (descentlab.training.init's table).
_SCHEME_ACTIVATION = {"glorot": "linear", "he": "relu", "lecun": "selu"}
_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)

InitChoice = str | float


def canonical_dropout(value: Any) -> float:
    """``value`` as a float probability in [0, 1); anything else raises."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"dropout must be a float in [0, 1), got {value!r}")
    return float(value)


def canonical_batch_norm(value: Any) -> bool:
    """``value`` if it is a bool; anything else raises."""
    if not isinstance(value, bool):
        raise TypeError(f"batch_norm must be True or False, got {value!r}")
    return value


def canonical_activation(value: Any) -> str:
    """``value`` if it names one of :data:`ACTIVATIONS`; anything else raises."""
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {value!r}")
    return value


def canonical_init(value: Any) -> InitChoice:
    """A name of :data:`INIT_NAMES` (``"xavier"`` becomes ``"glorot"``) or a positive float std."""
    if isinstance(value, str) and value in INIT_NAMES:
        return "glorot" if value == "xavier" else value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    raise ValueError(f"init must be one of {', '.join(INIT_NAMES)} or a positive float, got {value!r}")


OPTION_DOMAINS: dict[str, OptionDomain] = {
    "dropout": OptionDomain("a float in [0, 1) (0 = no dropout)", canonical_dropout),
    "batch_norm": OptionDomain("True or False", canonical_batch_norm),
    "activation": OptionDomain(f"one of {', '.join(ACTIVATIONS)}", canonical_activation),
    "init": OptionDomain(
        f"one of {', '.join(INIT_NAMES)} or a positive float (the std of a normal init)", canonical_init
    ),
}
MLP_OPTIONS: dict[str, Any] = {"dropout": 0.0, "batch_norm": False, "activation": "relu", "init": "default"}
CNN_OPTIONS: dict[str, Any] = {"batch_norm": False, "activation": "relu", "init": "default"}
# A network without hidden layers (logistic regression) has only its initialisation to choose.
LINEAR_OPTIONS: dict[str, Any] = {"init": "default"}


def domains_for(options: dict[str, Any]) -> dict[str, OptionDomain]:
    """The :data:`OPTION_DOMAINS` of the options named in ``options``."""
    return {name: OPTION_DOMAINS[name] for name in options}


@torch.no_grad()
def initialise_(model: nn.Module, init: InitChoice, activation: str) -> None:
    """Re-initialise every Linear/Conv layer of ``model`` by ``init`` (see the module docstring).

    Layers are taken in module order; all but the last are hidden layers followed by ``activation``.
    """
    if init == "default":
        return
    layers = [module for module in model.modules() if isinstance(module, _LAYERS)]
    for index, layer in enumerate(layers):
        if isinstance(init, float):
            layer.weight.normal_(0.0, init)
        else:
            hidden = index < len(layers) - 1
            follows = (activation if hidden else "linear") if init == "auto" else _SCHEME_ACTIVATION[init]
            init_weight_(layer.weight, follows, groups=getattr(layer, "groups", 1))
        if layer.bias is not None:
            layer.bias.zero_()


def hidden_block(
    width: int, activation: str, batch_norm: bool, dropout: float = 0.0, dimensions: int = 1
) -> list[nn.Module]:
    """What follows a hidden layer of ``width`` units/channels: [batch norm], activation, [dropout]."""
    block: list[nn.Module] = []
    if batch_norm:
        block.append(nn.BatchNorm1d(width) if dimensions == 1 else nn.BatchNorm2d(width))
    block.append(ACTIVATIONS[activation]())
    if dropout > 0:
        block.append(nn.Dropout(dropout))
    return block


def mlp(
    sizes: tuple[int, ...],
    activation: str = "relu",
    dropout: float = 0.0,
    batch_norm: bool = False,
    init: InitChoice = "default",
) -> nn.Sequential:
    """Fully connected net: ``mlp((64, 128, 10))`` is 64 -> 128 -> ReLU -> 10 with the defaults.

    Options (see the module docstring) add batch norm before and dropout after each hidden activation.
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least input and output sizes, got {sizes}")
    activation, dropout = canonical_activation(activation), canonical_dropout(dropout)
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(itertools.pairwise(sizes)):
        if index > 0:
            layers += hidden_block(width_in, activation, batch_norm, dropout)
        layers.append(nn.Linear(width_in, width_out))
    model = nn.Sequential(*layers)
    initialise_(model, canonical_init(init), activation)
    return model


def cnn2d(
    side: int,
    channels: tuple[int, int],
    classes: int,
    activation: str = "relu",
    batch_norm: bool = False,
    init: InitChoice = "default",
) -> nn.Sequential:
    """Two 3x3 conv + ReLU + 2x2 max-pool blocks and a linear classifier, for ``side x side`` images.

    ``activation`` replaces ReLU; ``batch_norm`` adds ``BatchNorm2d`` between each conv and activation.
    """
    if side % 4:
        raise ValueError(f"cnn2d pools twice by 2, so the image side must be a multiple of 4, got {side}")
    activation = canonical_activation(activation)
    first, second = channels
    model = nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        nn.Conv2d(1, first, 3, padding=1),
        *hidden_block(first, activation, batch_norm, dimensions=2),
        nn.MaxPool2d(2),
        nn.Conv2d(first, second, 3, padding=1),
        *hidden_block(second, activation, batch_norm, dimensions=2),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(second * (side // 4) ** 2, classes),
    )
    initialise_(model, canonical_init(init), activation)
    return model


def cnn1d(
    length: int,
    channels: int,
    classes: int,
    activation: str = "relu",
    batch_norm: bool = False,
    init: InitChoice = "default",
) -> nn.Sequential:
    """Three 1-D conv layers (kernel 5, stride 2) with ReLU and a linear classifier, for signals.

    Follows the shape of the convolutional baseline of MNIST-1D (Greydanus & Kobak, 2024).
    ``activation`` replaces ReLU; ``batch_norm`` adds ``BatchNorm1d`` between each conv and activation.
    """
    activation = canonical_activation(activation)
    # Each stride-2, padding-2, kernel-5 convolution maps length L to ceil(L / 2).
    reduced = length
    for _ in range(3):
        reduced = (reduced + 1) // 2
    layers: list[nn.Module] = [nn.Unflatten(1, (1, length))]
    for channels_in in (1, channels, channels):
        layers.append(nn.Conv1d(channels_in, channels, 5, stride=2, padding=2))
        layers += hidden_block(channels, activation, batch_norm)
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * reduced, classes))
    initialise_(model, canonical_init(init), activation)
    return model
