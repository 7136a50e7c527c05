"""A deep, narrow MLP on Gaussian inputs: the network of Saito, *Deep Learning from Scratch* (2016), ch. 6.2.

The book draws 1000 inputs ``x ~ N(0, I)`` in 100 dimensions and passes them through five hidden layers
of 100 units to show how the initial weight scale shapes each layer's activations. ``gaussian-deep-mlp``
is that network (100 -> 5 x 100 -> 2) on exactly such inputs, given a loss so that gradients flow through
every layer: the label is the side of a fixed random hyperplane, ``y = argmax(x T)`` for a ``100 x 2``
teacher ``T ~ N(0, 1)``. One CPU generator seeded :data:`DATA_SEED` draws 2000 inputs, then ``T``;
the first 1000 are the training set (the book's 1000 points, one full batch), the next 500 the
validation set and the last 500 the test set.

Model options: ``dropout``, ``batch_norm``, ``activation`` and ``init`` (see
:mod:`descentlab.problems.networks`); ``init=1.0`` and ``init=0.01`` are the book's two fixed scales,
``glorot`` and ``he`` its Xavier and He schemes.
"""

from __future__ import annotations

from functools import cache, partial

import torch

from descentlab.problems.classification import ClassificationData, classification_problem
from descentlab.problems.networks import MLP_OPTIONS, domains_for, mlp
from descentlab.problems.registry import register

INPUTS = 100
HIDDEN_LAYERS = 5
WIDTH = 100
CLASSES = 2
SIZES = (INPUTS,) + (WIDTH,) * HIDDEN_LAYERS + (CLASSES,)
"""Layer sizes of the network: the book's five hidden layers of 100 units, on 100 inputs."""

TRAIN, VALIDATION, TEST = 1000, 500, 500
DATA_SEED = 0


@cache
def gaussian_data() -> ClassificationData:
    """The inputs (float32 rows of 100 standard normals) and the teacher's labels, split 1000/500/500."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    inputs = torch.randn(TRAIN + VALIDATION + TEST, INPUTS, generator=generator)
    teacher = torch.randn(INPUTS, CLASSES, generator=generator)
    labels = (inputs @ teacher).argmax(dim=1)
    cuts = (TRAIN, TRAIN + VALIDATION)
    return ClassificationData(
        inputs[: cuts[0]], labels[: cuts[0]],
        inputs[cuts[0] : cuts[1]], labels[cuts[0] : cuts[1]],
        inputs[cuts[1] :], labels[cuts[1] :],
    )  # fmt: skip


# Measured with Adam (lr 1e-3), batch 100, the default options, seeds 0-1: 0.90 validation accuracy by
# 100 steps, 0.90-0.91 at 400 (a linear teacher learned from 1000 points in 100-D).
register(
    classification_problem(
        "gaussian-deep-mlp", "MLP 100-5x100-2 on 1000 Gaussian inputs (Deep Learning from Scratch ch. 6.2)",
        gaussian_data, partial(mlp, SIZES), budget_steps=400, batch_size=100, target=0.88,
        options=MLP_OPTIONS, option_domains=domains_for(MLP_OPTIONS),
    )
)  # fmt: skip
