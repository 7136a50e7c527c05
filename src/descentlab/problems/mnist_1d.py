"""Learning problems on MNIST-1D, generated procedurally by the ``mnist1d`` package (no download).

We call ``mnist1d.data.make_dataset`` directly with its default arguments (40-sample signals, 5000
examples, data seed 42, its own 4000/1000 train/test split) instead of ``get_dataset``, which tries
the network and writes a pickle into the working directory. Generation takes about a second, so the
arrays are cached per process. Its 1000 test signals are our test split; the last 800 of a fixed
permutation of its 4000 training signals are our validation split, leaving 3200 for training
(:func:`~descentlab.problems.classification.carve_validation`, split seed 0).

Model options: ``mnist1d-mlp`` takes ``dropout``, ``batch_norm``, ``activation`` and ``init``;
``mnist1d-cnn`` takes ``batch_norm``, ``activation`` and ``init`` (see
:mod:`descentlab.problems.networks`).

Reference: Greydanus & Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024,
https://github.com/greydanus/mnist1d.
"""

from __future__ import annotations

import random
from functools import cache, partial

import numpy as np
import torch

from descentlab.problems.classification import ClassificationData, carve_validation, classification_problem
from descentlab.problems.networks import CNN_OPTIONS, MLP_OPTIONS, cnn1d, domains_for, mlp
from descentlab.problems.registry import register


@cache
def mnist1d_data(num_samples: int = 5000) -> ClassificationData:
    """Generate MNIST-1D (``num_samples`` signals), leaving global random state untouched.

    The package splits them 80/20 into train and test; a fifth of its training signals (800 of the
    default 4000) becomes our validation split. ``make_dataset`` seeds Python's and NumPy's global
    generators; we save and restore both so that building a problem never reseeds the caller's
    randomness.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    if num_samples < 10:
        raise ValueError(f"num_samples must be >= 10 (one example per class), got {num_samples}")
    args = get_dataset_args()
    args.num_samples = num_samples
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        dataset = make_dataset(args)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    train_inputs = torch.tensor(dataset["x"], dtype=torch.float32)
    return carve_validation(
        train_inputs,
        torch.tensor(dataset["y"], dtype=torch.int64),
        torch.tensor(dataset["x_test"], dtype=torch.float32),
        torch.tensor(dataset["y_test"], dtype=torch.int64),
        validation_count=round(len(train_inputs) / 5),
    )


# Budgets and targets measured with Adam (lr 1e-3), one CPU thread, seeds 0-2, on the 3200/800 split:
# the MLP peaks at 0.58-0.59 validation accuracy, reaching 0.57 by 900-1300 steps; its budget is 1000
# steps (31 epochs, about 2 s on one thread), so that the default comparison of `make demo`, where it
# costs most, stays under 3 minutes on 2 cores: tuned rates get there sooner than Adam at 1e-3.
# The CNN reaches 0.75 by 1650-1900 steps and ends at 0.78-0.79 after 2500.
register(
    classification_problem(
        "mnist1d-mlp", "MLP 40-100-100-10 on procedurally generated MNIST-1D",
        mnist1d_data, partial(mlp, (40, 100, 100, 10)), budget_steps=1000, batch_size=100, target=0.57,
        tags=("default",), options=MLP_OPTIONS, option_domains=domains_for(MLP_OPTIONS),
    )
)  # fmt: skip
register(
    classification_problem(
        "mnist1d-cnn", "three-layer 1-D CNN on procedurally generated MNIST-1D",
        mnist1d_data, partial(cnn1d, 40, 25, 10), budget_steps=2500, batch_size=100, target=0.75,
        options=CNN_OPTIONS, option_domains=domains_for(CNN_OPTIONS),
    )
)  # fmt: skip
