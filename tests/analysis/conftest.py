"""Small float64 models with closed-form or finite-difference Hessians, shared by the analysis tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn


@dataclass
class LinearRegression:
    """``nn.Linear(d, 1)`` with mean squared error; its Hessian is ``2 X1^T X1 / n`` with ``X1 = [X, 1]``."""

    model: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor

    def loss(self) -> torch.Tensor:
        return ((self.model(self.inputs).squeeze(-1) - self.targets) ** 2).mean()

    def closed_form_hessian(self) -> np.ndarray:
        design = np.hstack([self.inputs.numpy(), np.ones((self.inputs.shape[0], 1))])
        return 2 * design.T @ design / design.shape[0]

    def least_squares_solution(self) -> np.ndarray:
        design = np.hstack([self.inputs.numpy(), np.ones((self.inputs.shape[0], 1))])
        return np.linalg.lstsq(design, self.targets.numpy(), rcond=None)[0]


@pytest.fixture
def linear_regression() -> LinearRegression:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(40, 4, generator=generator, dtype=torch.float64) * torch.tensor(
        [1.0, 2.0, 0.5, 3.0], dtype=torch.float64
    )
    targets = inputs @ torch.tensor([1.0, -2.0, 0.5, 0.1], dtype=torch.float64) + 0.3
    targets = targets + 0.1 * torch.randn(40, generator=generator, dtype=torch.float64)
    torch.manual_seed(0)
    model = nn.Linear(4, 1).double()
    return LinearRegression(model, inputs, targets)


@dataclass
class TinyNetwork:
    """A 3-4-2 tanh network with cross-entropy on fixed data (26 parameters)."""

    model: nn.Module
    inputs: torch.Tensor
    labels: torch.Tensor

    def loss(self) -> torch.Tensor:
        return nn.functional.cross_entropy(self.model(self.inputs), self.labels)


@pytest.fixture
def tiny_network() -> TinyNetwork:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    generator = torch.Generator().manual_seed(2)
    inputs = torch.randn(16, 3, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 2, (16,), generator=generator)
    return TinyNetwork(model, inputs, labels)
