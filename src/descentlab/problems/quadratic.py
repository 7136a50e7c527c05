"""A 100-dimensional noisy quadratic with a chosen Hessian spectrum (the noisy quadratic model).

The minibatch loss is ``l(x) = 1/2 sum_i h_i (x_i - c_i)^2`` with a fresh ``c ~ N(0, diag(1 / (B h)))``
per step, so its gradient ``h * x - h * c`` is the exact gradient ``H x`` plus noise of covariance
``H / B``: gradient noise aligned with the curvature and shrinking with the batch size ``B``, as in
the noisy quadratic model of Zhang et al. The expected loss is ``f(x) + d / (2B)`` with
``f(x) = 1/2 x^T H x``; ``evaluate`` reports the noise-free ``f(x)``, whose minimum is 0 at ``x = 0``.

There is no finite data set: no training or test split (``evaluate_train``/``evaluate_test`` are
``None``) and no pass over the training set (``epoch_batches`` is ``None``), so SVRG cannot run here.
The data fingerprint hashes the curvatures.

Reference: Zhang, Li, Nado, Martens, Sachdeva, Dahl, Shallue, Grosse, "Which Algorithmic Choices
Matter at Which Batch Sizes? Insights From a Noisy Quadratic Model", NeurIPS 2019,
https://arxiv.org/abs/1907.04164.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from descentlab.problems.base import Problem, Task
from descentlab.problems.fingerprints import fingerprint_values
from descentlab.problems.registry import register
from descentlab.problems.seeding import noise_generator

DIMENSION = 100
# Curvatures log-spaced over three decades: condition number 1000, so plain gradient descent needs
# thousands of steps on the flattest direction while adaptive methods rescale it.
CURVATURES = torch.logspace(-3, 0, DIMENSION, dtype=torch.float64)


class VectorModel(nn.Module):
    """A module holding one vector parameter ``x``."""

    def __init__(self, start: torch.Tensor) -> None:
        super().__init__()
        self.x = nn.Parameter(start.clone())

    def forward(self) -> torch.Tensor:
        """Return the current vector."""
        return self.x


def quadratic_value(x: torch.Tensor, curvatures: torch.Tensor = CURVATURES) -> torch.Tensor:
    """Noise-free loss ``f(x) = 1/2 sum_i h_i x_i^2``, vectorised over leading dimensions."""
    return 0.5 * (curvatures.to(x.dtype) * x**2).sum(dim=-1)


def noisy_quadratic_task(seed: int, batch_size: int | None) -> Task:
    """The seeded task: start ``x0 ~ N(0, I)`` and per-step centres ``c`` drawn from the seed.

    ``batch_size`` is the ``B`` of the noise covariance ``H / B`` (no data is stored).
    """
    if batch_size is None or batch_size < 1:
        raise ValueError(f"batch_size (the B in noise covariance H / B) must be >= 1, got {batch_size}")
    dtype = torch.get_default_dtype()
    start = torch.randn(DIMENSION, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    model = VectorModel(start.to(dtype))
    curvatures = CURVATURES.to(dtype)
    centre_std = (1.0 / (batch_size * CURVATURES)).sqrt()
    generator = noise_generator(seed)
    batches = (
        (centre_std * torch.randn(DIMENSION, generator=generator, dtype=torch.float64)).to(dtype)
        for _ in itertools.count()
    )

    def loss(centres: torch.Tensor) -> torch.Tensor:
        return 0.5 * (curvatures * (model.x - centres) ** 2).sum()

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            return {
                "loss": float(quadratic_value(model.x, curvatures)),
                "distance": float(torch.linalg.vector_norm(model.x)),
            }

    return Task(model=model, batches=batches, loss=loss, evaluate=evaluate, steps_per_epoch=1)


register(
    Problem(
        name="noisy-quadratic",
        summary="100-D noisy quadratic, Hessian eigenvalues log-spaced in [1e-3, 1], noise covariance H/B",
        kind="learning",
        make_task=noisy_quadratic_task,
        # Adam at lr 1e-3 moves ~1e-3 per step from |x0| ~ 10: 4000 steps reach f ~ 0.04 in ~0.5 s.
        budget_steps=4000,
        batch_size=16,
        metric="loss",
        higher_is_better=False,
        target=0.05,
        optimum=0.0,
        tags=("learning", "noisy"),
        data_fingerprint=lambda: fingerprint_values(CURVATURES),
    )
)
