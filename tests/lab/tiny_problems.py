"""Tiny problems built on the problem contract, so the lab tests do not depend on the real registry."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from descentlab.problems.base import Problem, Task
from descentlab.problems.registry import _PROBLEMS, register

TINY_NAMES = ("tiny-bowl", "tiny-logreg", "tiny-blowup")


class _Point(nn.Module):
    def __init__(self, start: tuple[float, float]) -> None:
        super().__init__()
        self.xy = nn.Parameter(torch.tensor(start, dtype=torch.float64))


def bowl(xy: torch.Tensor) -> torch.Tensor:
    """x^2/20 + y^2, vectorised over leading dimensions."""
    return xy[..., 0] ** 2 / 20 + xy[..., 1] ** 2


def _bowl_task(seed: int, batch_size: int | None) -> Task:
    model = _Point((-7.0, 2.0))
    return Task(
        model=model,
        batches=itertools.repeat(None),
        loss=lambda _: bowl(model.xy),
        evaluate=lambda: {"loss": float(bowl(model.xy))},
        epoch_batches=lambda: [None],
    )


def _blowup_task(seed: int, batch_size: int | None) -> Task:
    """f = -x^2 - y^2 grows without bound: every descent run must be reported as diverged."""
    model = _Point((0.5, 0.5))
    return Task(
        model=model,
        batches=itertools.repeat(None),
        loss=lambda _: -(model.xy**2).sum() * 100,
        evaluate=lambda: {"loss": float(-(model.xy**2).sum() * 100)},
        epoch_batches=lambda: [None],
    )


def _logreg_task(seed: int, batch_size: int | None) -> Task:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(96, 5, generator=generator)
    labels = (inputs @ torch.tensor([1.0, -2.0, 0.5, 0.0, 1.0]) > 0).long()
    train_x, train_y, valid_x, valid_y = inputs[:64], labels[:64], inputs[64:], labels[64:]
    model = nn.Linear(5, 2)
    with torch.no_grad():
        model.weight.copy_(0.1 * torch.randn(2, 5, generator=generator))
        model.bias.zero_()
    batch_size = batch_size or 16

    def batches():
        while True:
            order = torch.randperm(64, generator=generator)
            for start in range(0, 64, batch_size):
                index = order[start : start + batch_size]
                yield train_x[index], train_y[index]

    def evaluate() -> dict[str, float]:
        logits = model(valid_x)
        return {
            "accuracy": float((logits.argmax(1) == valid_y).float().mean()),
            "loss": float(nn.functional.cross_entropy(logits, valid_y)),
        }

    return Task(
        model=model,
        batches=batches(),
        loss=lambda batch: nn.functional.cross_entropy(model(batch[0]), batch[1]),
        evaluate=evaluate,
        steps_per_epoch=64 // batch_size,
        epoch_batches=lambda: [
            (train_x[i : i + batch_size], train_y[i : i + batch_size]) for i in range(0, 64, batch_size)
        ],
    )


def register_tiny_problems() -> None:
    """Register the tiny problems (idempotent; also used as the worker setup of parallel runs)."""
    problems = [
        Problem(
            name="tiny-bowl",
            summary="x^2/20 + y^2 from (-7, 2)",
            kind="function2d",
            make_task=_bowl_task,
            budget_steps=40,
            target=0.5,
            optimum=0.0,
            function=bowl,
            bounds=((-10.0, 10.0), (-5.0, 5.0)),
            minima=((0.0, 0.0),),
            start=(-7.0, 2.0),
            tags=("default",),
        ),
        Problem(
            name="tiny-logreg",
            summary="logistic regression on 96 Gaussian points",
            kind="learning",
            make_task=_logreg_task,
            budget_steps=30,
            batch_size=16,
            metric="accuracy",
            higher_is_better=True,
            target=0.8,
            tags=("default",),
        ),
        Problem(
            name="tiny-blowup",
            summary="-100 (x^2 + y^2): unbounded below",
            kind="function2d",
            make_task=_blowup_task,
            budget_steps=200,
            function=lambda xy: -100 * (xy**2).sum(-1),
            bounds=((-2.0, 2.0), (-2.0, 2.0)),
            start=(0.5, 0.5),
        ),
    ]
    for problem in problems:
        if problem.name not in _PROBLEMS:
            register(problem)


def unregister_tiny_problems() -> None:
    """Remove the tiny problems from the registry."""
    for name in TINY_NAMES:
        _PROBLEMS.pop(name, None)
