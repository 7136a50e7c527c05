"""Classification problems: a fixed train/validation split, a model, cross-entropy, accuracy.

The split is fixed per data set (the seed does not move examples between train and validation), so
seeds vary what an optimizer comparison should average over: the initial weights and the minibatch
order. Both depend on the seed only (:mod:`descentlab.problems.seeding`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from descentlab.problems.base import Problem, Task
from descentlab.problems.seeding import batches_per_epoch, order_generator, seeded_init, shuffled_batches

# Validation runs in chunks so that convolutional models on 10k images stay within a few hundred MB.
_EVALUATION_CHUNK = 1000


@dataclass(frozen=True)
class ClassificationData:
    """Inputs (float32, one row per example) and integer labels of a train/validation split."""

    train_inputs: torch.Tensor
    train_labels: torch.Tensor
    validation_inputs: torch.Tensor
    validation_labels: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.train_inputs) != len(self.train_labels):
            raise ValueError(
                f"{len(self.train_inputs)} training inputs but {len(self.train_labels)} training labels"
            )
        if len(self.validation_inputs) != len(self.validation_labels):
            raise ValueError(
                f"{len(self.validation_inputs)} validation inputs but "
                f"{len(self.validation_labels)} validation labels"
            )


def split_once(
    inputs: torch.Tensor, labels: torch.Tensor, validation_fraction: float, split_seed: int = 0
) -> ClassificationData:
    """Split ``inputs``/``labels`` into train and validation by one fixed random permutation."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(split_seed))
    validation_count = round(len(inputs) * validation_fraction)
    validation, train = order[:validation_count], order[validation_count:]
    return ClassificationData(inputs[train], labels[train], inputs[validation], labels[validation])


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

    ``evaluate`` returns validation ``accuracy`` and ``loss`` (mean cross-entropy).
    """
    if batch_size is None or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1 for a learning problem, got {batch_size}")
    with seeded_init(seed):
        model = build_model()
    dtype = next(model.parameters()).dtype
    batches = shuffled_batches(data.train_inputs, data.train_labels, batch_size, order_generator(seed))

    def loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, labels = batch
        # Data is stored as float32 once; a model built under another default dtype gets a cast copy.
        return functional.cross_entropy(model(inputs.to(dtype)), labels)

    def evaluate() -> dict[str, float]:
        return accuracy_and_loss(model, data.validation_inputs, data.validation_labels)

    return Task(
        model=model,
        batches=batches,
        loss=loss,
        evaluate=evaluate,
        steps_per_epoch=batches_per_epoch(len(data.train_inputs), batch_size),
    )


def classification_problem(
    name: str,
    summary: str,
    load_data: Callable[[], ClassificationData],
    build_model: Callable[[], nn.Module],
    budget_steps: int,
    batch_size: int,
    target: float,
    tags: tuple[str, ...] = (),
) -> Problem:
    """Describe a classifier as a ``learning`` problem whose headline metric is validation accuracy.

    ``load_data`` is called when a task is built, not at registration, so importing the registry
    stays cheap; loaders should cache their arrays.
    """

    def make_task(seed: int, batch_size: int | None) -> Task:
        return classification_task(load_data(), build_model, seed, batch_size)

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
    )
