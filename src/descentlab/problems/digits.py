"""Learning problems on scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).

Pixels (0..16) are scaled to [0, 1]. One fixed permutation splits the 1797 images 60/20/20 into
1079 training, 359 validation and 359 test images (:func:`~descentlab.problems.classification.split_three`,
split seed 0); ``evaluate_train`` uses the first 1000 training images of a fixed permutation.
Reference: Alpaydin & Kaynak, "Optical Recognition of Handwritten Digits", UCI ML Repository, 1998;
``sklearn.datasets.load_digits``.

Model options: ``digits-logreg`` (no hidden layer) takes ``init``; ``digits-mlp`` takes ``dropout``,
``batch_norm``, ``activation`` and ``init``; ``digits-cnn`` takes ``batch_norm``, ``activation`` and
``init`` (see :mod:`descentlab.problems.networks`).
"""

from __future__ import annotations

from functools import cache, partial

import torch

from descentlab.problems.classification import ClassificationData, classification_problem, split_three
from descentlab.problems.networks import (
    CNN_OPTIONS,
    LINEAR_OPTIONS,
    MLP_OPTIONS,
    cnn2d,
    domains_for,
    mlp,
)
from descentlab.problems.registry import register


@cache
def digits_data() -> ClassificationData:
    """The digits as float32 rows of 64 pixels in [0, 1], split once 60/20/20 (cached per process)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    inputs = torch.tensor(bunch.data, dtype=torch.float32) / 16
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    return split_three(inputs, labels, validation_fraction=0.2, test_fraction=0.2)


# Budgets and targets measured with Adam (lr 1e-3), one CPU thread, seeds 0-2, on the 60/20/20 split:
# logistic regression reaches 0.92 validation accuracy by 1200-1300 steps and ends at 0.92-0.93 (1.2 s);
# the MLP reaches 0.95 by 350-400 steps and ends at 0.97-0.975 (0.9 s); the CNN reaches 0.95 by
# 300-450 steps and ends at 0.96-0.98 (4-6 s on a loaded machine).
register(
    classification_problem(
        "digits-logreg", "multinomial logistic regression on sklearn's 8x8 digits",
        digits_data, partial(mlp, (64, 10)), budget_steps=1500, batch_size=64, target=0.92,
        options=LINEAR_OPTIONS, option_domains=domains_for(LINEAR_OPTIONS),
    )
)  # fmt: skip
register(
    classification_problem(
        "digits-mlp", "MLP 64-128-10 on sklearn's 8x8 digits",
        digits_data, partial(mlp, (64, 128, 10)), budget_steps=600, batch_size=64, target=0.95,
        tags=("default",), options=MLP_OPTIONS, option_domains=domains_for(MLP_OPTIONS),
    )
)  # fmt: skip
register(
    classification_problem(
        "digits-cnn", "two-block CNN on sklearn's 8x8 digits",
        digits_data, partial(cnn2d, 8, (16, 32), 10), budget_steps=600, batch_size=64, target=0.95,
        options=CNN_OPTIONS, option_domains=domains_for(CNN_OPTIONS),
    )
)  # fmt: skip
