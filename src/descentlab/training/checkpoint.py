"""Checkpoints that resume bit-identically: model, optimizer, scheduler and RNG states, written atomically.

A resumed run reproduces the uninterrupted one exactly only if everything random continues from the same
point: torch's CPU (and CUDA) generators, NumPy's global generator, Python's ``random``, and any
``torch.Generator`` the caller owns (e.g. a ``DataLoader``'s). The file is written with
:func:`descentlab.atomic.atomic_open` (temporary file in the same folder, fsync, :func:`os.replace`), so a
crash never leaves a half-written checkpoint under the final name; its permissions follow the umask.
Everything is stored as tensors and plain Python values, so loading uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab.atomic import atomic_open

__all__ = ["load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 1


def _rng_state(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }


def _restore_rng(state: dict[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    missing = set(generators) - set(state["generators"])
    if missing:
        raise KeyError(
            f"checkpoint has no state for generators {sorted(missing)}; saved: {sorted(state['generators'])}"
        )
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Atomically write model, optimizer, scheduler, RNG states and ``extra`` (e.g. ``{"epoch": 3}``).

    ``scheduler`` is anything with ``state_dict()`` (torch ``LRScheduler``, descentlab schedules).
    ``extra`` must hold tensors and plain Python values (it is loaded with ``weights_only=True``).
    """
    payload = {
        "format_version": FORMAT_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": _rng_state(generators or {}),
        "extra": dict(extra or {}),
    }
    with atomic_open(path) as file:  # a missing folder is a FileNotFoundError, not created silently
        torch.save(payload, file)
    return Path(path)


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
    restore_rng: bool = True,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote into freshly built objects; returns ``extra``.

    Build ``model``, ``optimizer`` and ``scheduler`` exactly as for the original run, then load. Passing an
    optimizer or scheduler that the checkpoint does not contain is an error (the resumed run would differ).
    """
    if not isinstance(map_location, (str, torch.device)):
        raise TypeError(f"map_location must be a device name such as 'cpu', got {map_location!r}")
    try:
        torch.device(map_location)
    except RuntimeError:
        raise ValueError(f"map_location must be a device name such as 'cpu', got {map_location!r}") from None
    payload = torch.load(Path(path), map_location=map_location, weights_only=True)
    if payload.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format {payload.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    model.load_state_dict(payload["model"])
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if payload[name] is None:
            raise KeyError(f"{path} holds no {name} state, but a {name} was passed to load_checkpoint")
        target.load_state_dict(payload[name])
    if restore_rng:
        _restore_rng(payload["rng"], generators or {})
    return payload["extra"]
