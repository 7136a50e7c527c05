"""A 20-second taste of descentlab: one small regression model trained by three optimizers."""

from __future__ import annotations

import time

import torch
from torch import nn

from descentlab.optim.registry import make_optimizer

DEMO_OPTIMIZERS = {
    "SGD": {"lr": 0.05, "momentum": 0.9},
    "Adam": {"lr": 0.01},
    "AdamW": {"lr": 0.01, "weight_decay": 1e-2},
}


def run_demo(steps: int = 300, seed: int = 0) -> str:
    """Fit ``y = sin(3x)`` with a small MLP under each demo optimizer; return a result table."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.linspace(-2, 2, 256).unsqueeze(1)
    targets = torch.sin(3 * inputs) + 0.05 * torch.randn(inputs.shape, generator=generator)
    lines = [f"{'optimizer':<10} {'final loss':>12} {'seconds':>8}", "-" * 32]
    for name, hyperparameters in DEMO_OPTIMIZERS.items():
        torch.manual_seed(seed)  # same initial weights for every optimizer: a paired comparison
        model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
        optimizer = make_optimizer(name, model.parameters(), **hyperparameters)
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(inputs), targets)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            final = nn.functional.mse_loss(model(inputs), targets).item()
        lines.append(f"{name:<10} {final:>12.5f} {time.perf_counter() - start:>8.2f}")
    return "\n".join(lines)
