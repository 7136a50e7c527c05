"""Classification problems: fixed train/validation/test splits, a model, cross-entropy, accuracy.

The splits are fixed per data set (the seed does not move examples between them), so seeds vary
what an optimizer comparison should average over: the initial weights and the minibatch order. Both
depend on the seed only (:mod:`descentlab.problems.seeding`).

A task evaluates three splits: ``evaluate`` the validation split, ``evaluate_test`` the test split and
``evaluate_train`` a fixed subset of at most :data:`TRAIN_EVALUATION_SIZE` training examples (the
first ones of a fixed permutation of the training set, the same for every seed), so that training
metrics cost no more than validation ones. ``epoch_batches`` is the training set in stored order, as
minibatches of the task's batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from descentlab.problems.base import OptionDomain, Problem, Task
from descentlab.problems.fingerprints import fingerprint_values
from descentlab.problems.seeding import (
    batches_in_order,
    batches_per_epoch,
    order_generator,
    seeded_init,
    shuffled_batches,
)

# Validation runs in chunks so that convolutional models on 10k images stay within a few hundred MB.
_EVALUATION_CHUNK = 1000
TRAIN_EVALUATION_SIZE = 1000
_SPLITS = ("train", "validation", "test")


def fixed_permutation(count: int, split_seed: int = 0) -> torch.Tensor:
    """The permutation of ``range(count)`` that fixes a data set's splits (the same in every process)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(split_seed))


@dataclass(frozen=True)
class ClassificationData:
    """Inputs (float32, one row per example) and integer labels of a train/validation/test split."""

    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    validation_inputs: torch.Tensor
    validation_labels: torch.Tensor
    test_inputs: torch.Tensor
    test_labels: torch.Tensor

    def __post_init__(self) -> None:
        for split in _SPLITS:
            inputs, labels = getattr(self, f"{split}_inputs"), getattr(self, f"{split}_labels")
            if len(inputs) != len(labels):
                raise ValueError(f"{len(inputs)} {split} inputs but {len(labels)} {split} labels")
            if len(inputs) == 0:
                raise ValueError(f"the {split} split is empty; every split needs at least one example")

    @cached_property
    def train_evaluation_indices(self) -> torch.Tensor:
        """The fixed training examples ``evaluate_train`` uses: the first 1000 of a fixed permutation."""
        return fixed_permutation(len(self.train_inputs))[:TRAIN_EVALUATION_SIZE]

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 hex digest of all six arrays (cached on the instance)."""
        return fingerprint_values(
            *(getattr(self, f"{split}_{part}") for split in _SPLITS for part in ("inputs", "labels"))
        )


def split_three(
    inputs: torch.Tensor,
    labels: torch.Tensor,
    validation_fraction: float,
    test_fraction: float,
    split_seed: int = 0,
) -> ClassificationData:
    """Split one labelled set into train, validation and test by one fixed random permutation.

    The permutation's first ``N - V - T`` entries are the training set, the next ``V =
    round(N * validation_fraction)`` the validation set and the last ``T = round(N * test_fraction)``
    the test set.
    """
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0 < fraction < 1:
            raise ValueError(f"{name} must be in (0, 1), got {fraction}")
    if validation_fraction + test_fraction >= 1:
        raise ValueError(
            "validation_fraction + test_fraction must be < 1 to leave training examples, got "
            f"{validation_fraction} + {test_fraction}"
        )
    order = fixed_permutation(len(inputs), split_seed)
    validation_count = round(len(inputs) * validation_fraction)
    test_count = round(len(inputs) * test_fraction)
    train_count = len(inputs) - validation_count - test_count
    train = order[:train_count]
    validation = order[train_count : train_count + validation_count]
    test = order[train_count + validation_count :]
    return ClassificationData(
        inputs[train], labels[train], inputs[validation], labels[validation], inputs[test], labels[test]
    )


def carve_validation(
    train_inputs: torch.Tensor,
    train_labels: torch.Tensor,
    test_inputs: torch.Tensor,
    test_labels: torch.Tensor,
    validation_count: int,
    split_seed: int = 0,
) -> ClassificationData:
    """Keep a given test split and carve the last ``validation_count`` of a fixed permutation of the
    training set off as validation set."""
    if not 1 <= validation_count < len(train_inputs):
        raise ValueError(
            f"validation_count must be in [1, {len(train_inputs) - 1}] for {len(train_inputs)} training "
            f"examples, got {validation_count}"
        )
    order = fixed_permutation(len(train_inputs), split_seed)
    train, validation = order[:-validation_count], order[-validation_count:]
    return ClassificationData(
        train_inputs[train],
        train_labels[train],
        train_inputs[validation],
        train_labels[validation],
        test_inputs,
        test_labels,
    )


def accuracy_and_loss(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean accuracy and mean cross-entropy of ``model`` on ``inputs``, in eval mode and without grad."""
    was_training = model.training
    dtype = next(model.parameters()).dtype
    model.eval()
    correct, total_loss = 0, 0.0
    with torch.no_grad():
        for begin in range(0, len(inputs), _EVALUATION_CHUNK):
            logits = model(inputs[begin : begin + _EVALUATION_CHUNK].to(dtype))
            chunk_labels = labels[begin : begin + _EVALUATION_CHUNK]
            total_loss += float(functional.cross_entropy(logits, chunk_labels, reduction="sum"))
            correct += int((logits.argmax(dim=-1) == chunk_labels).sum())
    model.train(was_training)
    return {"accuracy": correct / len(inputs), "loss": total_loss / len(inputs)}


def classification_task(
    data: ClassificationData, build_model: Callable[[], nn.Module], seed: int, batch_size: int
) -> Task:
    """A task training ``build_model()`` (initialised under ``seed``) with mean cross-entropy.

    ``evaluate``, ``evaluate_train`` and ``evaluate_test`` return ``accuracy`` and ``loss`` (mean
    cross-entropy) on the validation split, the fixed training subset and the test split.
    """
    if batch_size is None or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1 for a learning problem, got {batch_size}")
    with seeded_init(seed):
        model = build_model()
    dtype = next(model.parameters()).dtype
    batches = shuffled_batches(data.train_inputs, data.train_labels, batch_size, order_generator(seed))
    train_subset = data.train_evaluation_indices
    train_inputs, train_labels = data.train_inputs[train_subset], data.train_labels[train_subset]

    def loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, labels = batch
        # Data is stored as float32 once; a model built under another default dtype gets a cast copy.
        return functional.cross_entropy(model(inputs.to(dtype)), labels)

    return Task(
        model=model,
        batches=batches,
        loss=loss,
        evaluate=lambda: accuracy_and_loss(model, data.validation_inputs, data.validation_labels),
        steps_per_epoch=batches_per_epoch(len(data.train_inputs), batch_size),
        evaluate_train=lambda: accuracy_and_loss(model, train_inputs, train_labels),
        evaluate_test=lambda: accuracy_and_loss(model, data.test_inputs, data.test_labels),
        epoch_batches=lambda: batches_in_order(data.train_inputs, data.train_labels, batch_size),
    )


def classification_problem(
    name: str,
    summary: str,
    load_data: Callable[[], ClassificationData],
    build_model: Callable[..., nn.Module],
    budget_steps: int,
    batch_size: int,
    target: float,
    tags: tuple[str, ...] = (),
    options: dict[str, Any] | None = None,
    option_domains: dict[str, OptionDomain] | None = None,
    data_fingerprint: Callable[[], str] | None = None,
) -> Problem:
    """Describe a classifier as a ``learning`` problem whose headline metric is validation accuracy.

    ``load_data`` is called when a task is built, not at registration, so importing the registry
    stays cheap; loaders should cache their arrays. ``build_model(**options)`` builds the network with
    the task's model options. ``data_fingerprint`` defaults to the hash of the loaded arrays.
    """
    options = dict(options or {})

    def make_task(seed: int, batch_size: int | None, **model_options: Any) -> Task:
        return classification_task(load_data(), lambda: build_model(**model_options), seed, batch_size)

    return Problem(
        name=name,
        summary=summary,
        kind="learning",
        make_task=make_task,
        budget_steps=budget_steps,
        batch_size=batch_size,
        metric="accuracy",
        higher_is_better=True,
        target=target,
        tags=("learning", *tags),
        options=options,
        option_domains=dict(option_domains or {}),
        data_fingerprint=data_fingerprint or (lambda: load_data().fingerprint),
    )
