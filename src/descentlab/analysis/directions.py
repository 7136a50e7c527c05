"""Random filter-normalised directions in parameter space (Li et al. 2018).

A random Gaussian direction has no notion of the scale of each layer, and networks with scale-invariant
layers (ReLU + batch norm) can be rescaled without changing the function, so plain random slices are not
comparable between networks. Li et al. rescale the direction filter by filter,

.. math:: d_{i} \\leftarrow \\frac{d_{i}}{\\|d_{i}\\|} \\|\\theta_{i}\\|,

where :math:`d_i` and :math:`\\theta_i` are the :math:`i`-th filter of a weight tensor: a slice along the
first (output) dimension -- an output channel of a convolution, a row of a linear layer's weight.

Parameters with one dimension or none (biases, batch-norm scales and shifts) have no filters. Li et al.'s
default (``ignore='biasbn'`` in their code) sets the direction to zero there, so those parameters stay
fixed along the slice; ``one_dimensional="zero"`` does the same. ``one_dimensional="normalize"`` treats
such a parameter as a single filter instead, which is the only sensible choice when a model has nothing
but 1-D parameters (a 2-D test function's point, a single bias).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from descentlab.analysis.parameter_vector import flatten, trainable_parameters

OneDimensionalRule = Literal["zero", "normalize"]


def filter_normalized_direction(
    model: nn.Module,
    generator: torch.Generator | None = None,
    one_dimensional: OneDimensionalRule = "zero",
) -> torch.Tensor:
    """A random direction over the trainable parameters of ``model``, filter-normalised, as a flat vector.

    Args:
        model: the module at the point the slice goes through (its weights set the filter norms).
        generator: random generator (CPU) for the Gaussian draws; seed it for reproducible slices.
        one_dimensional: ``"zero"`` (Li et al.'s default: biases and batch-norm parameters do not move)
            or ``"normalize"`` (each 1-D parameter is one filter).

    Returns:
        A flat vector in the parameter order of :func:`~descentlab.analysis.parameter_vector.flatten`.

    Raises:
        ValueError: for an unknown ``one_dimensional`` rule, or when the rule ``"zero"`` would give a zero
            direction because the model has no parameter with two or more dimensions.

    References:
        H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein, "Visualizing the Loss Landscape of Neural Nets",
        NeurIPS 2018, section 4.
    """
    if one_dimensional not in ("zero", "normalize"):
        raise ValueError(f"one_dimensional must be 'zero' or 'normalize', got {one_dimensional!r}")
    parameters = trainable_parameters(model)
    if one_dimensional == "zero" and all(parameter.dim() <= 1 for parameter in parameters):
        raise ValueError(
            "every trainable parameter has at most one dimension, so one_dimensional='zero' gives a zero "
            "direction; use one_dimensional='normalize'"
        )
    pieces = []
    for parameter in parameters:
        weights = parameter.detach().to(torch.float64).cpu()
        if weights.dim() <= 1 and one_dimensional == "zero":
            pieces.append(torch.zeros_like(weights))
            continue
        direction = torch.randn(weights.shape, generator=generator, dtype=torch.float64)
        filters = direction.reshape(weights.shape[0], -1) if weights.dim() >= 2 else direction.reshape(1, -1)
        weight_filters = weights.reshape(filters.shape)
        # The 1e-10 follows Li et al.'s code: a zero filter of the weights gives a zero filter, not NaN.
        scale = torch.linalg.vector_norm(weight_filters, dim=1, keepdim=True) / (
            torch.linalg.vector_norm(filters, dim=1, keepdim=True) + 1e-10
        )
        pieces.append((filters * scale).reshape(weights.shape))
    return flatten(pieces)
