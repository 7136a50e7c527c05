"""Seeded randomness for tasks: initialisation and minibatch order that depend on the seed only.

Every task owns a :class:`torch.Generator` seeded from its seed, so the same seed gives the same
minibatch order whatever optimizer runs (paired comparisons), and initialisation runs inside
:func:`seeded_init` so it neither depends on nor disturbs torch's global random state.

Deterministic problems (a fixed start, full batch, no noise) would repeat the same run for every
seed, so their seed moves the start instead, by one rule (:func:`perturbed_start`): seed 0 is the
canonical start; seed ``k > 0`` adds to each coordinate an offset ``0.05 * (hi - lo) * z`` with
``z ~ N(0, 1)`` drawn (float64, in axis order) from a CPU generator seeded ``k + 3_000_003``, where
``(lo, hi)`` is that axis' plotting window, and clamps the result into ``[lo, hi]``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# Offsets keep the initialisation stream and the minibatch-order stream of one seed independent.
_ORDER_STREAM = 1_000_003
_NOISE_STREAM = 2_000_003
_START_STREAM = 3_000_003
# Standard deviation of a perturbed start, as a fraction of each axis' plotting-window width.
START_PERTURBATION = 0.05


def order_generator(seed: int) -> torch.Generator:
    """A CPU generator for the minibatch order (or gradient noise) of the task seeded ``seed``."""
    return torch.Generator().manual_seed(int(seed) + _ORDER_STREAM)


def noise_generator(seed: int) -> torch.Generator:
    """A CPU generator for gradient noise of the task seeded ``seed``, independent of its order."""
    return torch.Generator().manual_seed(int(seed) + _NOISE_STREAM)


def perturbed_start(
    start: tuple[float, float], bounds: tuple[tuple[float, float], tuple[float, float]], seed: int
) -> tuple[float, float]:
    """The start of seed ``seed`` on a deterministic problem: ``start`` itself for seed 0, else perturbed.

    Seed ``k > 0`` adds a per-axis normal offset with standard deviation :data:`START_PERTURBATION`
    times that axis' width in ``bounds``, drawn from a generator seeded by ``k``, and clamps the point
    into ``bounds`` (see the module docstring).
    """
    if seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed}")
    if seed == 0:
        return start
    generator = torch.Generator().manual_seed(int(seed) + _START_STREAM)
    draws = torch.randn(len(start), generator=generator, dtype=torch.float64).tolist()
    point = []
    for coordinate, (low, high), draw in zip(start, bounds, draws, strict=True):
        moved = coordinate + START_PERTURBATION * (high - low) * draw
        point.append(min(max(moved, low), high))
    return (point[0], point[1])


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


def batches_in_order(
    inputs: torch.Tensor, targets: torch.Tensor, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One pass over ``(inputs, targets)`` in stored order, as consecutive minibatches of ``batch_size``.

    The last minibatch is smaller when ``batch_size`` does not divide the number of examples.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [
        (inputs[begin : begin + batch_size], targets[begin : begin + batch_size])
        for begin in range(0, len(inputs), batch_size)
    ]


def batches_per_epoch(count: int, batch_size: int) -> int:
    """Minibatches in one pass over ``count`` examples (the last one may be smaller)."""
    return -(-count // batch_size)
