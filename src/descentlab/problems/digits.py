"""Learning problems on scikit-learn's bundled 8x8 handwritten digits (1797 images, no download).

Pixels (0..16) are scaled to [0, 1]; a fixed 20 % validation split. Reference: Alpaydin & Kaynak,
"Optical Recognition of Handwritten Digits", UCI ML Repository, 1998; ``sklearn.datasets.load_digits``.
"""

from __future__ import annotations

from functools import cache, partial

import torch

from descentlab.problems.classification import ClassificationData, classification_problem, split_once
from descentlab.problems.networks import cnn2d, mlp
from descentlab.problems.registry import register


@cache
def digits_data() -> ClassificationData:
    """The digits as float32 rows of 64 pixels in [0, 1], split once 80/20 (cached per process)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    inputs = torch.tensor(bunch.data, dtype=torch.float32) / 16
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    return split_once(inputs, labels, validation_fraction=0.2)


# Budgets and targets measured with Adam (lr 1e-3), one CPU thread, seeds 0-2: logistic regression
# reaches 0.93 by 1100-1250 steps (1 s) and ends at 0.94-0.95; the MLP reaches 0.95 by 300-350 steps
# and ends at 0.97-0.98 (0.25 s); the CNN reaches 0.95 by 300 steps and ends at 0.97 (1.3 s).
register(
    classification_problem(
        "digits-logreg", "multinomial logistic regression on sklearn's 8x8 digits",
        digits_data, partial(mlp, (64, 10)), budget_steps=1500, batch_size=64, target=0.93,
    )
)  # fmt: skip
register(
    classification_problem(
        "digits-mlp", "MLP 64-128-10 on sklearn's 8x8 digits",
        digits_data, partial(mlp, (64, 128, 10)), budget_steps=600, batch_size=64, target=0.95,
        tags=("default",),
    )
)  # fmt: skip
register(
    classification_problem(
        "digits-cnn", "two-block CNN on sklearn's 8x8 digits",
        digits_data, partial(cnn2d, 8, (16, 32), 10), budget_steps=600, batch_size=64, target=0.95,
    )
)  # fmt: skip
