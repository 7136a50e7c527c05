"""Seeded randomness for tasks: initialisation and minibatch order that depend on the seed only.

Every task owns a :class:`torch.Generator` seeded from its seed, so the same seed gives the same
minibatch order whatever optimizer runs (paired comparisons), and initialisation runs inside
:func:`seeded_init` so it neither depends on nor disturbs torch's global random state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# Offsets keep the initialisation stream and the minibatch-order stream of one seed independent.
_ORDER_STREAM = 1_000_003
_NOISE_STREAM = 2_000_003


def order_generator(seed: int) -> torch.Generator:
    """A CPU generator for the minibatch order (or gradient noise) of the task seeded ``seed``."""
    return torch.Generator().manual_seed(int(seed) + _ORDER_STREAM)


def noise_generator(seed: int) -> torch.Generator:
    """A CPU generator for gradient noise of the task seeded ``seed``, independent of its order."""
    return torch.Generator().manual_seed(int(seed) + _NOISE_STREAM)


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Run module construction with torch's global generator seeded by ``seed``, then restore it.

    ``nn.Linear`` and friends draw their initial weights from the global generator and accept no
    generator argument, so we fork the global state rather than leak a reseed into the caller.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def shuffled_batches(
    inputs: torch.Tensor, targets: torch.Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless minibatches ``(inputs[i], targets[i])``, reshuffled each epoch by ``generator``.

    Every epoch visits each example exactly once; the last minibatch of an epoch is smaller when
    ``batch_size`` does not divide the number of examples.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    count = len(inputs)
    while True:
        order = torch.randperm(count, generator=generator)
        for begin in range(0, count, batch_size):
            chosen = order[begin : begin + batch_size]
            yield inputs[chosen], targets[chosen]


def batches_per_epoch(count: int, batch_size: int) -> int:
    """Minibatches in one pass over ``count`` examples (the last one may be smaller)."""
    return -(-count // batch_size)
