r"""Second derivatives by double backpropagation: Hessian-vector products and small dense Hessians.

The one implementation behind :class:`descentlab.optim.Newton` and the curvature tools of
:mod:`descentlab.analysis`. It sits below both layers and imports nothing from descentlab::

    loss = loss_fn()                                # scalar, with its autograd graph
    hessian = HessianVectorProduct(loss, params)    # one backward pass with create_graph=True
    hessian(vector)                                 # Hv, one more backward pass
    hessian.dense()                                 # n x n, for small n

The object holds the gradient's autograd graph; drop it to free that graph. For a function of a few
variables evaluated at many points at once (the 2-D test functions), :func:`pointwise_gradient_and_hessian`
gives every point's gradient and Hessian in ``d + 1`` backward passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["ROWS_PER_PASS", "HessianVectorProduct", "pointwise_gradient_and_hessian"]

# Hessian rows computed per batched backward pass in dense(): bounds the memory of the batched graph to
# ROWS_PER_PASS copies of the gradient graph instead of n copies.
ROWS_PER_PASS = 256


class HessianVectorProduct:
    r"""The Hessian :math:`H = \nabla^2_\theta L` of a scalar ``loss`` over ``params``, as a linear map.

    The gradient :math:`g = \nabla_\theta L` is computed once with ``create_graph=True``; each product
    is one more backward pass through it, :math:`Hv = \nabla_\theta (g^\top v)` (Pearlmutter 1994), so a
    product costs about two gradient evaluations and never forms :math:`H`. Parameters are flattened in
    the order given; a parameter the loss does not reach has a zero gradient and zero Hessian rows.

    Args:
        loss: scalar tensor with its autograd graph (not yet backpropagated with a freed graph).
        params: the tensors to differentiate against (``requires_grad=True``), one dtype and device.

    Attributes:
        parameters: ``params`` as a list.
        gradient: the flat gradient :math:`g` (detached), in the parameters' dtype.
        dim: :math:`n`, the number of parameter entries.
        dtype, device: those of the parameters.
        products: number of Hessian-vector products computed so far (a dense Hessian counts ``n``).

    Raises:
        RuntimeError: from ``torch.autograd.grad`` when the loss's graph was already freed.

    References:
        B. A. Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6(1), 1994.
    """

    def __init__(self, loss: Tensor, params: Sequence[Tensor]) -> None:
        self.parameters = list(params)
        parts = torch.autograd.grad(loss, self.parameters, create_graph=True, allow_unused=True)
        # One flat gradient with its graph: a product is one backward pass through it, and dense() can
        # batch the rows of the identity through the same graph.
        self._flat_gradient = torch.cat(
            [
                (torch.zeros_like(param) if part is None else part).reshape(-1)
                for part, param in zip(parts, self.parameters)
            ]
        )
        self.gradient = self._flat_gradient.detach()
        self.dim = self.gradient.numel()
        self.dtype = self.gradient.dtype
        self.device = self.gradient.device
        self.products = 0

    @property
    def _curved(self) -> bool:
        # Without a graph the gradient does not depend on the parameters: H = 0 (a loss linear in them).
        return self._flat_gradient.requires_grad

    def _rows(self, vectors: Tensor, batched: bool) -> Tensor:
        parts = torch.autograd.grad(
            self._flat_gradient,
            self.parameters,
            vectors,
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=batched,
        )
        shape = (len(vectors), -1) if batched else (-1,)
        zeros_shape = (len(vectors),) if batched else ()
        return torch.cat(
            [
                vectors.new_zeros(*zeros_shape, param.numel()) if part is None else part.reshape(shape)
                for part, param in zip(parts, self.parameters)
            ],
            dim=-1,
        )

    def __call__(self, vector: Tensor) -> Tensor:
        """The flat product :math:`Hv` for a flat ``vector`` of length ``dim``, in ``vector``'s dtype.

        The product is computed in the parameters' dtype and on their device.

        Raises:
            ValueError: when ``vector`` is not 1-D of length ``dim``.
        """
        if vector.dim() != 1 or vector.numel() != self.dim:
            raise ValueError(
                f"expected a flat vector of {self.dim} entries (one per parameter entry), got shape "
                f"{tuple(vector.shape)}"
            )
        self.products += 1
        own = vector.to(dtype=self.dtype, device=self.device)
        product = self._rows(own, batched=False) if self._curved else torch.zeros_like(own)
        return product.to(vector.dtype)

    matvec = __call__

    def dense(self, dtype: torch.dtype | None = None) -> Tensor:
        r"""The dense :math:`n \times n` Hessian, made exactly symmetric as :math:`(H + H^\top)/2`.

        Rows come from batched backward passes over rows of the identity (``ROWS_PER_PASS`` at a time,
        through ``vmap``), one product per row where ``vmap`` lacks a batching rule for some operation.
        The products are computed in the parameters' dtype; the result, and the symmetrisation, are in
        ``dtype`` (default: the parameters'). The caller checks that :math:`n^2` entries fit in memory.
        """
        dtype = dtype or self.dtype
        if not self._curved:
            return torch.zeros(self.dim, self.dim, dtype=dtype, device=self.device)
        identity = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        blocks = []
        for first in range(0, self.dim, ROWS_PER_PASS):
            basis = identity[first : first + ROWS_PER_PASS]
            try:
                blocks.append(self._rows(basis, batched=True))
            except RuntimeError:
                blocks.append(torch.stack([self._rows(row, batched=False) for row in basis]))
        self.products += self.dim
        hessian = torch.cat(blocks).to(dtype)
        return 0.5 * (hessian + hessian.T)


def pointwise_gradient_and_hessian(
    function: Callable[[Tensor], Tensor], points: Tensor
) -> tuple[Tensor, Tensor]:
    r"""Gradients ``(..., d)`` and Hessians ``(..., d, d)`` of a vectorised function at ``points (..., d)``.

    ``function`` maps ``(..., d)`` to ``(...)`` point by point, so the gradient of the *sum* over points
    is the per-point gradient; differentiating each gradient component once more gives the Hessian rows.
    ``d + 1`` backward passes, whatever the number of points; the Hessians are symmetrised as
    :math:`(H + H^\top)/2`. Computed in ``points``' dtype.

    Raises:
        ValueError: when ``function`` does not return one value per point.
    """
    points = points.detach().requires_grad_(True)
    values = function(points)
    if values.shape != points.shape[:-1]:
        raise ValueError(
            f"function must map shape (..., {points.shape[-1]}) to (...); for input {tuple(points.shape)} it "
            f"returned {tuple(values.shape)}"
        )
    (gradient,) = torch.autograd.grad(values.sum(), points, create_graph=True)
    rows = []
    for component in range(points.shape[-1]):
        if gradient.requires_grad:
            (row,) = torch.autograd.grad(
                gradient[..., component].sum(), points, retain_graph=True, allow_unused=True
            )
        else:
            row = None
        rows.append(torch.zeros_like(points) if row is None else row)
    hessian = torch.stack(rows, dim=-2)
    return gradient.detach(), ((hessian + hessian.transpose(-1, -2)) / 2).detach()
