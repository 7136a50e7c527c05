"""Gradient clipping by value and by global norm, with an explicit policy for non-finite gradients.

torch's :func:`torch.nn.utils.clip_grad_norm_` either raises on a non-finite norm or silently multiplies every
gradient by ``max_norm / nan``, which turns the whole step into NaNs. Here the caller chooses what happens:

- ``"raise"``: raise :class:`NonFiniteGradientError`, naming the parameters whose gradients are not finite;
- ``"skip"``: set every gradient to ``None`` so that ``optimizer.step()`` leaves all parameters and all state
  untouched (torch.optim optimizers skip parameters without a gradient), and report ``skip_step=True``;
  only the gradients passed in are dropped, so pass every parameter the optimizer holds;
- ``"zero"``: replace the non-finite gradient entries by 0 (finite entries are kept) and clip as usual.

A gradient is non-finite when one of its entries is NaN or inf; this is decided entry by entry, never from
the norm, so large but finite gradients (say 1000 entries of ``1e20`` in float32, whose 2-norm overflows
float32) are clipped like any others. Norms are computed in float64 after dividing each tensor by its
largest absolute entry (the scaling used by LAPACK's ``dnrm2``), so they overflow only if the true norm
exceeds the float64 range. The norm before clipping is returned for logging, together with what was done.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch

NonFinitePolicy = Literal["raise", "skip", "zero"]
_POLICIES = ("raise", "skip", "zero")

__all__ = ["GradientClipResult", "NonFiniteGradientError", "clip_grad_norm", "clip_grad_value"]


class NonFiniteGradientError(RuntimeError):
    """Raised by the clipping functions under ``nonfinite="raise"`` when a gradient holds NaN or inf."""


@dataclass(frozen=True)
class GradientClipResult:
    """What a clipping call saw and did.

    Attributes:
        total_norm: norm of all gradients *before* clipping, computed in float64 (``nan``/``inf`` only
            when an entry was NaN/inf); for value clipping, the global 2-norm before clipping, for logging.
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


def _check_positive(name: str, value, allowed: str, allow_inf: bool = False) -> None:
    """Raise unless ``value`` is a real number (not a bool) > 0, finite unless ``allow_inf``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {allowed}, got {value!r} of type {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range (10**400) is refused like inf
        number = math.inf
    if not (number > 0 and (math.isfinite(number) or (allow_inf and value == math.inf))):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def _scaled_norm(values: torch.Tensor, norm_type: float) -> torch.Tensor:
    """``norm_type``-norm of ``values`` (float64) as ``m * ||values / m||`` with ``m = max |values|``.

    Dividing by the largest entry keeps ``|x|^p`` in ``[0, 1]``, so no finite input overflows or underflows
    to a wrong result; NaN/inf inputs skip the division and give torch's ``nan``/``inf``.
    """
    largest = torch.linalg.vector_norm(values, math.inf)
    if norm_type == math.inf:
        return largest
    scale = torch.where(torch.isfinite(largest) & (largest > 0), largest, torch.ones_like(largest))
    return scale * torch.linalg.vector_norm(values / scale, norm_type)


def _global_norm(named, norm_type: float) -> float:
    """The ``norm_type``-norm of all gradients concatenated, in float64, as a Python float."""
    grads = [p.grad.detach() for _, p in named if p.grad.numel() > 0]
    if not grads:
        return 0.0
    device = grads[0].device
    norms = [
        _scaled_norm(g.to(torch.complex128 if g.is_complex() else torch.float64), norm_type).to(device)
        for g in grads
    ]
    return float(_scaled_norm(torch.stack(norms), norm_type))


def _nonfinite_names(named) -> tuple[str, ...]:
    if not named:
        return ()
    finite = torch.stack([torch.isfinite(p.grad).all().to(named[0][1].grad.device) for _, p in named])
    return tuple(name for (name, _), ok in zip(named, finite.tolist()) if not ok)


def _scale_grads(named, factor: float) -> None:
    """Multiply every gradient by ``factor`` in its own dtype."""
    # float16/bfloat16/float32 kernels hold a Python scalar as float32, where a factor below ~1e-38 would
    # flush to 0 although the product is representable; two steps of sqrt(factor) stay within range.
    factors = [factor] if factor >= 1e-30 else [math.sqrt(factor)] * 2
    with torch.no_grad():
        for _, p in named:
            for f in factors:
                p.grad.mul_(f)


def _handle_nonfinite(named, bad, nonfinite: str, total_norm: float, what: str) -> bool:
    """Apply the policy to the gradients named in ``bad``; return whether the step must be skipped."""
    if nonfinite == "raise":
        raise NonFiniteGradientError(
            f"{what}: gradient norm is {total_norm}; non-finite gradients in {list(bad)}. "
            "Lower the learning rate, check the loss for log(0)/division by zero, or pass "
            "nonfinite='skip' or nonfinite='zero' to keep training."
        )
    if nonfinite == "skip":
        for _, p in named:
            p.grad = None
        return True
    for name, p in named:
        if name in bad:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=0.0, neginf=0.0)
    return False


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
    (https://arxiv.org/abs/1211.5063), as in :func:`torch.nn.utils.clip_grad_norm_`, except that the norm is
    computed in float64 with scaling (no overflow for finite gradients) and the factor, a float64 number, is
    applied in each gradient's dtype.

    Args:
        parameters: tensors, or ``(name, tensor)`` pairs such as ``model.named_parameters()`` (names make the
            error message useful); tensors without a gradient are ignored.
        max_norm: the largest allowed global norm, a finite real number > 0.
        norm_type: the p of the p-norm, a real number > 0 (``float('inf')`` for the max norm).
        nonfinite: ``"raise"``, ``"skip"`` or ``"zero"``, see the module docstring.

    Returns:
        A :class:`GradientClipResult`; log ``result.total_norm``; under ``"skip"`` check ``result.skip_step``.

    Example:
        >>> loss.backward()  # doctest: +SKIP
        >>> result = clip_grad_norm(model.named_parameters(), 1.0, nonfinite="skip")  # doctest: +SKIP
        >>> if not result.skip_step:  # doctest: +SKIP
        ...     optimizer.step()
    """
    _check_positive("max_norm", max_norm, "a finite real number > 0")
    _check_positive("norm_type", norm_type, "a real number > 0 or float('inf')", allow_inf=True)
    _check_policy(nonfinite)
    named = _named_with_grads(parameters)
    bad = _nonfinite_names(named)
    total = _global_norm(named, norm_type)
    if bad and _handle_nonfinite(named, bad, nonfinite, total, "clip_grad_norm"):
        return GradientClipResult(total, 0.0, False, True, bad)
    clip_total = _global_norm(named, norm_type) if bad else total
    factor = max_norm / (clip_total + 1e-6)
    if factor < 1.0:
        _scale_grads(named, factor)
    clipped = _global_norm(named, norm_type)
    return GradientClipResult(total, clipped, not bad, False, bad)


def clip_grad_value(
    parameters: Iterable[torch.Tensor] | Iterable[tuple[str, torch.Tensor]] | torch.Tensor,
    clip_value: float,
    nonfinite: NonFinitePolicy = "raise",
) -> GradientClipResult:
    """Clamp every gradient entry to ``[-clip_value, clip_value]``, as torch's :func:`clip_grad_value_`.

    Unlike norm clipping this changes the gradient's direction. A NaN entry would stay NaN after clamping,
    so non-finite gradients go through the same ``nonfinite`` policy as :func:`clip_grad_norm`.

    Args:
        parameters: tensors or ``(name, tensor)`` pairs; tensors without a gradient are ignored.
        clip_value: the largest allowed absolute gradient entry, a finite real number > 0.
        nonfinite: ``"raise"``, ``"skip"`` or ``"zero"``.

    Returns:
        A :class:`GradientClipResult` with global 2-norms before and after clipping.
    """
    _check_positive("clip_value", clip_value, "a finite real number > 0")
    _check_policy(nonfinite)
    named = _named_with_grads(parameters)
    bad = _nonfinite_names(named)
    total = _global_norm(named, 2.0)
    if bad and _handle_nonfinite(named, bad, nonfinite, total, "clip_grad_value"):
        return GradientClipResult(total, 0.0, False, True, bad)
    with torch.no_grad():
        for _, p in named:
            # torch refuses a clamp bound outside the dtype's range (1e5 in float16); it clips nothing there.
            bound = min(float(clip_value), torch.finfo(p.grad.dtype).max)
            p.grad.clamp_(-bound, bound)
    clipped = _global_norm(named, 2.0)
    return GradientClipResult(total, clipped, not bad, False, bad)
