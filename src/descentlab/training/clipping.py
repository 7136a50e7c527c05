"""Gradient clipping by value and by global norm, with an explicit policy for non-finite gradients.

torch's :func:`torch.nn.utils.clip_grad_norm_` either raises on a non-finite norm or silently multiplies every
gradient by ``max_norm / nan``, which turns the whole step into NaNs. Here the caller chooses what happens:

- ``"raise"``: raise :class:`NonFiniteGradientError`, naming the parameters whose gradients are not finite;
- ``"skip"``: set every gradient to ``None`` so that ``optimizer.step()`` leaves all parameters and all state
  untouched (torch.optim optimizers skip parameters without a gradient), and report ``skip_step=True``;
  only the gradients passed in are dropped, so pass every parameter the optimizer holds;
- ``"zero"``: replace the non-finite gradient entries by 0 and clip the rest as usual.

The norm before clipping is returned for logging, together with what was done.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn.utils import clip_grads_with_norm_, get_total_norm

NonFinitePolicy = Literal["raise", "skip", "zero"]
_POLICIES = ("raise", "skip", "zero")

__all__ = ["GradientClipResult", "NonFiniteGradientError", "clip_grad_norm", "clip_grad_value"]


class NonFiniteGradientError(RuntimeError):
    """Raised by the clipping functions under ``nonfinite="raise"`` when a gradient holds NaN or inf."""


@dataclass(frozen=True)
class GradientClipResult:
    """What a clipping call saw and did.

    Attributes:
        total_norm: norm of all gradients *before* clipping (``nan``/``inf`` when they were not finite);
            for value clipping, the global 2-norm before clipping, for logging.
        clipped_norm: norm of all gradients after clipping (0.0 when the step is skipped).
        finite: whether every gradient entry was finite before clipping.
        skip_step: ``True`` only under ``nonfinite="skip"`` with a non-finite gradient; the gradients were
            set to ``None``, so calling ``optimizer.step()`` anyway changes nothing.
        nonfinite_parameters: names (or ``"param[i]"`` indices) of the parameters with non-finite gradients.
    """

    total_norm: float
    clipped_norm: float
    finite: bool
    skip_step: bool
    nonfinite_parameters: tuple[str, ...]


def _named_with_grads(parameters) -> list[tuple[str, torch.Tensor]]:
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    named = []
    for index, item in enumerate(parameters):
        name, tensor = item if isinstance(item, tuple) else (f"param[{index}]", item)
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"parameters must be tensors or (name, tensor) pairs, got {type(tensor).__name__} at {index}"
            )
        if tensor.grad is not None:
            named.append((name, tensor))
    return named


def _check_policy(nonfinite: str) -> None:
    if nonfinite not in _POLICIES:
        raise ValueError(f"nonfinite must be one of {_POLICIES}, got {nonfinite!r}")


def _global_norm(named, norm_type: float) -> torch.Tensor:
    if not named:
        return torch.tensor(0.0)
    return get_total_norm([p.grad for _, p in named], norm_type=norm_type)


def _handle_nonfinite(named, nonfinite: str, total_norm: float, what: str) -> tuple[tuple[str, ...], bool]:
    """Apply the policy; return the offending names and whether the step must be skipped."""
    bad = tuple(name for name, p in named if not torch.isfinite(p.grad).all())
    if nonfinite == "raise":
        raise NonFiniteGradientError(
            f"{what}: gradient norm is {total_norm}; non-finite gradients in {list(bad)}. "
            "Lower the learning rate, check the loss for log(0)/division by zero, or pass "
            "nonfinite='skip' or nonfinite='zero' to keep training."
        )
    if nonfinite == "skip":
        for _, p in named:
            p.grad = None
        return bad, True
    for _, p in named:
        torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
    return bad, False


def clip_grad_norm(
    parameters: Iterable[torch.Tensor] | Iterable[tuple[str, torch.Tensor]] | torch.Tensor,
    max_norm: float,
    norm_type: float = 2.0,
    nonfinite: NonFinitePolicy = "raise",
) -> GradientClipResult:
    """Rescale all gradients together so that their global norm is at most ``max_norm``.

    With :math:`g` the concatenation of all gradients and :math:`\\|g\\|` its ``norm_type``-norm, every
    gradient is multiplied by :math:`\\min(1, \\text{max\\_norm} / (\\|g\\| + 10^{-6}))`, the rule of
    Pascanu, Mikolov & Bengio, "On the difficulty of training recurrent neural networks", ICML 2013
    (https://arxiv.org/abs/1211.5063). The norm and the scaling are torch's own
    (:func:`torch.nn.utils.get_total_norm`, :func:`torch.nn.utils.clip_grads_with_norm_`).

    Args:
        parameters: tensors, or ``(name, tensor)`` pairs such as ``model.named_parameters()`` (names make the
            error message useful); tensors without a gradient are ignored.
        max_norm: the largest allowed global norm (> 0).
        norm_type: the p of the p-norm (``float('inf')`` for the max norm).
        nonfinite: ``"raise"``, ``"skip"`` or ``"zero"``, see the module docstring.

    Returns:
        A :class:`GradientClipResult`; log ``result.total_norm``; under ``"skip"`` check ``result.skip_step``.

    Example:
        >>> loss.backward()  # doctest: +SKIP
        >>> result = clip_grad_norm(model.named_parameters(), 1.0, nonfinite="skip")  # doctest: +SKIP
        >>> if not result.skip_step:  # doctest: +SKIP
        ...     optimizer.step()
    """
    if not (isinstance(max_norm, (int, float)) and max_norm > 0 and math.isfinite(max_norm)):
        raise ValueError(f"max_norm must be a finite number > 0, got {max_norm!r}")
    _check_policy(nonfinite)
    named = _named_with_grads(parameters)
    total = float(_global_norm(named, norm_type))
    finite = math.isfinite(total)
    bad: tuple[str, ...] = ()
    if not finite:
        bad, skip = _handle_nonfinite(named, nonfinite, total, "clip_grad_norm")
        if skip:
            return GradientClipResult(total, 0.0, False, True, bad)
    if named:
        clip_total = _global_norm(named, norm_type)
        clip_grads_with_norm_([p for _, p in named], max_norm, clip_total)
    clipped = float(_global_norm(named, norm_type))
    return GradientClipResult(total, clipped, finite, False, bad)


def clip_grad_value(
    parameters: Iterable[torch.Tensor] | Iterable[tuple[str, torch.Tensor]] | torch.Tensor,
    clip_value: float,
    nonfinite: NonFinitePolicy = "raise",
) -> GradientClipResult:
    """Clamp every gradient entry to ``[-clip_value, clip_value]`` (torch's :func:`clip_grad_value_`).

    Unlike norm clipping this changes the gradient's direction. A NaN entry would stay NaN after clamping,
    so non-finite gradients go through the same ``nonfinite`` policy as :func:`clip_grad_norm`.

    Args:
        parameters: tensors or ``(name, tensor)`` pairs; tensors without a gradient are ignored.
        clip_value: the largest allowed absolute gradient entry (> 0).
        nonfinite: ``"raise"``, ``"skip"`` or ``"zero"``.

    Returns:
        A :class:`GradientClipResult` with global 2-norms before and after clipping.
    """
    if not (isinstance(clip_value, (int, float)) and clip_value > 0 and math.isfinite(clip_value)):
        raise ValueError(f"clip_value must be a finite number > 0, got {clip_value!r}")
    _check_policy(nonfinite)
    named = _named_with_grads(parameters)
    total = float(_global_norm(named, 2.0))
    finite = math.isfinite(total)
    bad: tuple[str, ...] = ()
    if not finite:
        bad, skip = _handle_nonfinite(named, nonfinite, total, "clip_grad_value")
        if skip:
            return GradientClipResult(total, 0.0, False, True, bad)
    if named:
        torch.nn.utils.clip_grad_value_([p for _, p in named], clip_value)
    clipped = float(_global_norm(named, 2.0))
    return GradientClipResult(total, clipped, finite, False, bad)
