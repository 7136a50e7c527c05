"""Hyperparameter checks shared by every optimizer; each error names the value and the allowed range."""

from __future__ import annotations

from typing import Any

from torch import Tensor


def _as_number(name: str, value: Any) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a number or a 1-element tensor, got shape {tuple(value.shape)}")
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def check_non_negative(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value >= 0``."""
    if not _as_number(name, value) >= 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def check_positive(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value > 0``."""
    if not _as_number(name, value) > 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def check_unit_interval(name: str, value: Any, *, closed_right: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is in [0, 1) (or [0, 1] with ``closed_right``)."""
    number = _as_number(name, value)
    inside = 0.0 <= number <= 1.0 if closed_right else 0.0 <= number < 1.0
    if not inside:
        interval = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def check_betas(betas: Any) -> None:
    """Raise ``ValueError`` unless ``betas`` is a pair with each entry in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    check_unit_interval("betas[0]", betas[0])
    check_unit_interval("betas[1]", betas[1])


def check_no_unsupported_modes(name: str, defaults: dict[str, Any]) -> None:
    """Refuse torch.optim modes that descentlab does not implement, instead of silently ignoring them."""
    if defaults.get("capturable"):
        raise ValueError(f"{name}: capturable=True (CUDA graph capture) is not supported; leave it False")
    if defaults.get("differentiable"):
        raise ValueError(f"{name}: differentiable=True is not supported; leave it False")
    if defaults.get("fused"):
        raise ValueError(
            f"{name}: fused=True is not supported; leave fused=None (descentlab uses multi-tensor kernels)"
        )
    if "lr" in defaults:
        check_non_negative("lr", defaults["lr"])
