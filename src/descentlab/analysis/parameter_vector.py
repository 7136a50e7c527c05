"""Parameters as one flat vector, and a guard that puts a model back exactly as it was.

Every analysis tool sees a model through its *trainable* parameters (``requires_grad=True``), in
``model.parameters()`` order; a direction, an eigenvector or a point of a trajectory is a flat vector in
that order, of length ``sum(p.numel())``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn


def trainable_parameters(model: nn.Module) -> list[torch.Tensor]:
    """The parameters of ``model`` that require gradients, in ``model.parameters()`` order.

    Raises:
        ValueError: when ``model`` has no trainable parameter.
    """
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if not parameters:
        raise ValueError(
            f"{type(model).__name__} has no parameter with requires_grad=True; unfreeze the parameters "
            "to analyse"
        )
    return parameters


def flatten(tensors: Sequence[torch.Tensor], dtype: torch.dtype | None = None) -> torch.Tensor:
    """Concatenate ``tensors`` into one 1-D tensor (detached), optionally cast to ``dtype``."""
    return torch.cat([tensor.detach().reshape(-1).to(dtype or tensor.dtype) for tensor in tensors])


def unflatten_like(vector: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Split the flat ``vector`` into tensors shaped, typed and placed like ``like``.

    Raises:
        ValueError: when the length of ``vector`` is not the total size of ``like``.
    """
    total = sum(tensor.numel() for tensor in like)
    if vector.dim() != 1 or vector.numel() != total:
        raise ValueError(
            f"expected a flat vector of {total} entries (one per parameter entry), got shape "
            f"{tuple(vector.shape)}"
        )
    pieces, offset = [], 0
    for tensor in like:
        piece = vector[offset : offset + tensor.numel()].reshape(tensor.shape)
        pieces.append(piece.to(dtype=tensor.dtype, device=tensor.device))
        offset += tensor.numel()
    return pieces


def parameter_vector(model: nn.Module) -> torch.Tensor:
    """The trainable parameters of ``model`` as one detached flat vector (a copy)."""
    return flatten(trainable_parameters(model)).clone()


@torch.no_grad()
def assign_parameter_vector(model: nn.Module, vector: torch.Tensor) -> None:
    """Copy the flat ``vector`` into the trainable parameters of ``model`` (in place)."""
    parameters = trainable_parameters(model)
    for parameter, piece in zip(parameters, unflatten_like(vector, parameters)):
        parameter.copy_(piece)


@contextlib.contextmanager
def restored_model_state(model: nn.Module) -> Iterator[None]:
    """Run the block, then put every parameter and buffer of ``model`` back bit for bit.

    Buffers matter because evaluating a loss in training mode updates batch-norm running statistics.
    The restore happens even when the block raises.
    """
    saved = {name: tensor.detach().clone() for name, tensor in model.state_dict(keep_vars=True).items()}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, tensor in model.state_dict(keep_vars=True).items():
                tensor.copy_(saved[name])
