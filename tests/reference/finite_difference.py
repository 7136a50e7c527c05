"""Finite-difference Hessians: an oracle independent of the Hessian-vector-product code."""

import numpy as np
import torch
from torch import nn


def finite_difference_hessian(model: nn.Module, loss_fn, step: float = 1e-5) -> np.ndarray:
    """Central differences of autograd gradients: column j = (g(θ + h e_j) - g(θ - h e_j)) / 2h."""
    parameters = list(model.parameters())
    flat = torch.cat([parameter.detach().reshape(-1) for parameter in parameters]).clone()

    def gradient_at(vector: torch.Tensor) -> np.ndarray:
        offset = 0
        with torch.no_grad():
            for parameter in parameters:
                parameter.copy_(vector[offset : offset + parameter.numel()].reshape(parameter.shape))
                offset += parameter.numel()
        gradients = torch.autograd.grad(loss_fn(), parameters)
        return torch.cat([gradient.reshape(-1) for gradient in gradients]).numpy()

    columns = []
    for index in range(flat.numel()):
        bump = torch.zeros_like(flat)
        bump[index] = step
        columns.append((gradient_at(flat + bump) - gradient_at(flat - bump)) / (2 * step))
    gradient_at(flat)
    hessian = np.stack(columns, axis=1)
    return (hessian + hessian.T) / 2
