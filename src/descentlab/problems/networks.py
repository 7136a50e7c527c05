"""The small networks the learning problems train: an MLP and 1-D / 2-D convolutional nets.

All take flat inputs (one row per example) so every problem shares one data layout; the
convolutional nets reshape internally.
"""

from __future__ import annotations

import itertools

from torch import nn


def mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    """Fully connected net with ReLU between layers: ``mlp((64, 128, 10))`` is 64 -> 128 -> ReLU -> 10."""
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least input and output sizes, got {sizes}")
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(itertools.pairwise(sizes)):
        if index > 0:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(width_in, width_out))
    return nn.Sequential(*layers)


def cnn2d(side: int, channels: tuple[int, int], classes: int) -> nn.Sequential:
    """Two 3x3 conv + ReLU + 2x2 max-pool blocks and a linear classifier, for ``side x side`` images."""
    if side % 4:
        raise ValueError(f"cnn2d pools twice by 2, so the image side must be a multiple of 4, got {side}")
    first, second = channels
    return nn.Sequential(
        nn.Unflatten(1, (1, side, side)),
        nn.Conv2d(1, first, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(first, second, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(second * (side // 4) ** 2, classes),
    )


def cnn1d(length: int, channels: int, classes: int) -> nn.Sequential:
    """Three 1-D conv layers (kernel 5, stride 2) with ReLU and a linear classifier, for signals.

    Follows the shape of the convolutional baseline of MNIST-1D (Greydanus & Kobak, 2024).
    """
    # Each stride-2, padding-2, kernel-5 convolution maps length L to ceil(L / 2).
    reduced = length
    for _ in range(3):
        reduced = (reduced + 1) // 2
    return nn.Sequential(
        nn.Unflatten(1, (1, length)),
        nn.Conv1d(1, channels, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv1d(channels, channels, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * reduced, classes),
    )
