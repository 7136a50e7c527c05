"""L1 and L2 regularisation: penalty terms, proximal L1 that produces exact zeros, and a sparsity report.

Penalties added to the loss (``loss = data_loss + l1_penalty(...) + l2_penalty(...)``):

.. math::  \\Omega_1(w) = \\lambda_1 \\sum_i |w_i|, \\quad \\Omega_2(w) = \\tfrac{\\lambda_2}{2} \\sum_i w_i^2

(the 1/2 makes the L2 gradient :math:`\\lambda_2 w`, so with SGD it equals ``weight_decay=lambda_2``).

A subgradient of :math:`|w|` almost never lands a weight exactly on zero, so L1 through the loss gives small
weights, not zeros. The proximal step does: after the optimizer's step with learning rate :math:`\\eta`,

.. math::  w \\leftarrow \\operatorname{sign}(w)\\,\\max(|w| - \\eta\\lambda_1, 0)

(soft thresholding, the proximal operator of :math:`\\eta\\lambda_1\\|\\cdot\\|_1`; ISTA / proximal gradient,
Parikh & Boyd, "Proximal Algorithms", 2014, section 6.5.2). With plain SGD this is exactly proximal
gradient descent; with adaptive optimizers it is the common heuristic (the exact proximal step would use the
optimizer's preconditioner).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from descentlab.optim._validation import check_non_negative

__all__ = ["ProximalL1", "SparsityReport", "l1_penalty", "l2_penalty", "sparsity"]


def _check_strength(name: str, value: float) -> None:
    check_non_negative(name, value)  # TypeError for text and bools, ValueError for < 0, nan, inf, 10**400


def _as_tensor_list(parameters) -> list[torch.Tensor]:
    if isinstance(parameters, torch.Tensor):
        return [parameters]
    tensors = list(parameters)
    if not tensors:
        raise ValueError("parameters is empty; pass e.g. model.parameters() or a list of weight tensors")
    return tensors


def l1_penalty(parameters: Iterable[torch.Tensor] | torch.Tensor, strength: float) -> torch.Tensor:
    """:math:`\\lambda_1 \\sum_i |w_i|` over ``parameters`` (differentiable; add it to the loss)."""
    _check_strength("strength", strength)
    tensors = _as_tensor_list(parameters)
    return strength * torch.stack([t.abs().sum() for t in tensors]).sum()


def l2_penalty(parameters: Iterable[torch.Tensor] | torch.Tensor, strength: float) -> torch.Tensor:
    """:math:`\\tfrac{\\lambda_2}{2} \\sum_i w_i^2` over ``parameters`` (differentiable; add to the loss)."""
    _check_strength("strength", strength)
    tensors = _as_tensor_list(parameters)
    return 0.5 * strength * torch.stack([t.pow(2).sum() for t in tensors]).sum()


class ProximalL1:
    """Soft-threshold parameters after each optimizer step, with threshold ``lr * strength``.

    The learning rate is read from each parameter's param group at every step, so schedulers and
    per-group learning rates are respected.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        strength: :math:`\\lambda_1 \\ge 0`.
        parameters: the tensors to sparsify (each must be in ``optimizer``); default: every parameter the
            optimizer holds. Usually pass the weights only (see
            :func:`~descentlab.training.decay_parameter_names`).

    Example:
        >>> prox = ProximalL1(optimizer, strength=1e-3, parameters=[model[0].weight])  # doctest: +SKIP
        >>> handle = prox.attach()  # doctest: +SKIP
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        strength: float,
        parameters: Iterable[torch.Tensor] | None = None,
    ) -> None:
        _check_strength("strength", strength)
        self.optimizer = optimizer
        self.strength = float(strength)
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if parameters is None:
            self._selected = set(held)
        else:
            chosen = _as_tensor_list(parameters)
            missing = [tuple(p.shape) for p in chosen if id(p) not in held]
            if missing:
                raise ValueError(
                    f"ProximalL1: {len(missing)} parameters with shapes {missing} are not in the optimizer, "
                    "the threshold needs their group's lr, so add them to it first"
                )
            self._selected = {id(p) for p in chosen}

    @torch.no_grad()
    def apply(self) -> None:
        """Soft-threshold the selected parameters once, using each group's current ``lr``."""
        for group in self.optimizer.param_groups:
            lr = group["lr"]
            threshold = float(lr) * self.strength
            for p in group["params"]:
                if id(p) in self._selected:
                    # sign(w) * relu(|w| - t): exact zeros wherever |w| <= t.
                    p.copy_(torch.sign(p) * torch.clamp_min(p.abs() - threshold, 0.0))

    def attach(self) -> RemovableHandle:
        """Run :meth:`apply` after every ``optimizer.step()``; ``handle.remove()`` detaches it."""
        return self.optimizer.register_step_post_hook(lambda _optimizer, _args, _kwargs: self.apply())


@dataclass(frozen=True)
class SparsityReport:
    """Fraction of exactly-zero (or ``|w| <= threshold``) entries.

    Attributes:
        fraction: zeros / total over all reported tensors.
        zeros: number of zero entries.
        total: number of entries.
        per_parameter: name -> fraction of zeros in that tensor.
    """

    fraction: float
    zeros: int
    total: int
    per_parameter: dict[str, float]


def sparsity(
    source: nn.Module | Iterable[tuple[str, torch.Tensor]],
    threshold: float = 0.0,
    weights_only: bool = False,
) -> SparsityReport:
    """Report how sparse a model's parameters are.

    Args:
        source: a module (its ``named_parameters()`` are used) or ``(name, tensor)`` pairs.
        threshold: an entry counts as zero when ``|w| <= threshold`` (0.0: exact zeros only).
        weights_only: skip tensors with fewer than 2 dimensions (biases, normalisation scales).
    """
    _check_strength("threshold", threshold)
    named = list(source.named_parameters() if isinstance(source, nn.Module) else source)
    per_parameter: dict[str, float] = {}
    zeros = total = 0
    for name, tensor in named:
        if weights_only and tensor.ndim < 2:
            continue
        count = int((tensor.detach().abs() <= threshold).sum())
        zeros += count
        total += tensor.numel()
        per_parameter[name] = count / tensor.numel() if tensor.numel() else 0.0
    if total == 0:
        raise ValueError("sparsity: no parameters to report on (empty model, or weights_only removed all)")
    return SparsityReport(zeros / total, zeros, total, per_parameter)
