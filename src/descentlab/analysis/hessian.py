"""Hessian-vector products of a model's loss, and the exact Hessian of small models.

The products come from :mod:`descentlab.autodiff` (shared with :class:`descentlab.optim.Newton`).

Interface used by every analysis tool: a model and a zero-argument closure ``loss_fn()`` that evaluates
the scalar loss of the model *at its current parameters* on a fixed set of data, e.g. for a problem task::

    batch = next(task.batches)
    hessian = HessianOperator(task.model, lambda: task.loss(batch))

The Hessian is taken with respect to the trainable parameters (``requires_grad=True``), flattened in
``model.parameters()`` order (see :mod:`descentlab.analysis.parameter_vector`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from descentlab.analysis.parameter_vector import flatten, trainable_parameters, unflatten_like
from descentlab.autodiff import HessianVectorProduct

LossClosure = Callable[[], torch.Tensor]

# 4096 parameters give a 128 MiB float64 Hessian and 4096 backward passes: still seconds on a CPU.
DEFAULT_MAX_PARAMETERS = 4096


class HessianTooLargeError(ValueError):
    """Raised when the dense Hessian of a model would be too large to form."""


def _scalar_loss(loss_fn: LossClosure) -> torch.Tensor:
    loss = loss_fn()
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn() must return a scalar tensor, got {shape}; reduce the loss (mean/sum)")
    return loss.reshape(())


class HessianOperator(HessianVectorProduct):
    r"""The Hessian :math:`H = \nabla^2_\theta L(\theta)` of ``loss_fn()`` as a linear operator.

    A :class:`descentlab.autodiff.HessianVectorProduct` over the model's trainable parameters: the
    gradient :math:`g` is computed once with ``create_graph=True`` and each product
    :math:`Hv = \nabla_\theta (g^\top v)` is one more backward pass (Pearlmutter 1994), so a product costs
    about two gradient evaluations and never forms :math:`H`. ``matvec(v)`` (or ``operator(v)``) takes a
    flat vector of any float dtype and returns :math:`Hv` in that dtype.

    Args:
        model: the module whose trainable parameters are differentiated.
        loss_fn: zero-argument closure returning the scalar loss at the current parameters.

    Attributes:
        dim: number of trainable parameter entries (the size of :math:`H` is ``dim x dim``).
        loss: the loss value (detached).
        gradient: the flat gradient (detached).
        products: number of Hessian-vector products computed so far.

    References:
        B. A. Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6(1), 1994.
    """

    def __init__(self, model: nn.Module, loss_fn: LossClosure) -> None:
        parameters = trainable_parameters(model)
        loss = _scalar_loss(loss_fn)
        if not loss.requires_grad:
            raise ValueError("loss_fn() returned a loss that does not depend on the model's parameters")
        super().__init__(loss, parameters)
        self.loss = loss.detach()


def hessian_vector_product(
    model: nn.Module, loss_fn: LossClosure, vectors: list[torch.Tensor]
) -> list[torch.Tensor]:
    """One Hessian-vector product with the vector given per parameter (shaped like the parameters).

    For many products build a :class:`HessianOperator` once and reuse it; this helper rebuilds the
    gradient graph on every call.
    """
    operator = HessianOperator(model, loss_fn)
    return unflatten_like(operator.matvec(flatten(vectors)), operator.parameters)


def check_hessian_size(parameter_count: int, max_parameters: int, dtype: torch.dtype) -> None:
    """Raise :class:`HessianTooLargeError` (saying how large it would be) when it exceeds the limit."""
    if parameter_count <= max_parameters:
        return
    size = parameter_count**2 * torch.empty((), dtype=dtype).element_size()
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    scaled, unit = float(size), 0
    while scaled >= 1024 and unit < len(units) - 1:
        scaled, unit = scaled / 1024, unit + 1
    raise HessianTooLargeError(
        f"the Hessian of {parameter_count:,} parameters has {parameter_count**2:,} entries "
        f"({scaled:.1f} {units[unit]} in {dtype}) and needs {parameter_count:,} backward passes; the limit "
        f"is max_parameters={max_parameters:,}. Raise max_parameters if you have the memory, or use the "
        "Hessian-vector-product tools instead: top_eigenvalues, hutchinson_trace, spectral_density."
    )


def exact_hessian(
    model: nn.Module, loss_fn: LossClosure, max_parameters: int = DEFAULT_MAX_PARAMETERS
) -> torch.Tensor:
    """The dense Hessian of ``loss_fn()`` over the flat trainable parameters, in float64.

    Row :math:`j` is :math:`H e_j` (Hessian-vector products in the parameters' dtype, batched, exact up
    to rounding); the result is symmetrised as :math:`(H + H^\\top)/2` to remove rounding asymmetry.

    Raises:
        HessianTooLargeError: when the parameter count exceeds ``max_parameters`` (the message gives the
            memory it would need and the HVP-based alternatives).
    """
    count = sum(parameter.numel() for parameter in trainable_parameters(model))
    check_hessian_size(count, max_parameters, torch.float64)
    return dense_hessian(HessianOperator(model, loss_fn))


def dense_hessian(operator: HessianOperator) -> torch.Tensor:
    """The dense float64 Hessian of an operator (batched products); check its size first (see above)."""
    return operator.dense(torch.float64)


def hessian_eigenvalues(
    model: nn.Module, loss_fn: LossClosure, max_parameters: int = DEFAULT_MAX_PARAMETERS
) -> torch.Tensor:
    """All eigenvalues of the exact Hessian (float64, ascending), from :func:`exact_hessian`."""
    return torch.linalg.eigvalsh(exact_hessian(model, loss_fn, max_parameters))
