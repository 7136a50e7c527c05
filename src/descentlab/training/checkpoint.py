"""Checkpoints that resume bit-identically: model, optimizer, scheduler and RNG states, written atomically.

A resumed run reproduces the uninterrupted one exactly only if everything random continues from the same
point: torch's CPU (and CUDA) generators, NumPy's global generator, Python's ``random``, and any
``torch.Generator`` the caller owns (e.g. a ``DataLoader``'s). The file is written with
:func:`descentlab.atomic.atomic_open` (temporary file in the same folder, fsync, :func:`os.replace`), so a
crash never leaves a half-written checkpoint under the final name, the folder is fsynced after the rename,
the permissions follow the umask, and the temporary file of a writer killed mid-save is removed by the next
save of the same checkpoint. Everything is stored as tensors and plain Python values, so loading uses
``torch.load(weights_only=True)`` and refuses pickled objects that could run code. A file that is not a
checkpoint (empty, truncated, a bare tensor or ``state_dict``, anything else) is a :class:`CheckpointError`
that names the path and says what it holds.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from descentlab.atomic import atomic_open

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]

FORMAT_VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive (since torch 1.6, the only format we write)


class CheckpointError(ValueError):
    """A file that is not a complete checkpoint written by :func:`save_checkpoint`."""


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


def _unpickle(path: Path, map_location: str | torch.device) -> Any:
    """What ``torch.load`` finds in ``path``; torch's errors become ones that name the file and the fix."""
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a folder; pass the file that save_checkpoint wrote")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with open(path, "rb") as file:
        start = file.read(len(_ZIP_MAGIC))
        if not start:
            raise CheckpointError(f"{path} is empty; it is not a checkpoint, delete it or pass another file")
        if start != _ZIP_MAGIC:
            raise CheckpointError(
                f"{path} is not a checkpoint: it starts with 0x{start.hex()}, not the zip header 0x"
                f"{_ZIP_MAGIC.hex()} that torch.save writes; pass the file that save_checkpoint wrote"
            )
        file.seek(0)
        try:
            zipfile.ZipFile(file)  # reads only the index at the end, so a truncated file fails here, cheaply
            file.seek(0)
            return torch.load(file, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            # torch's message mostly advises weights_only=False; only the name of the refused object helps.
            refused = ", ".join(dict.fromkeys(re.findall(r"GLOBAL (\S+)", str(error)))) or "unknown"
            raise CheckpointError(
                f"{path} holds objects other than tensors and plain Python values (refused: {refused}); "
                "load_checkpoint does not unpickle them because that can run arbitrary code; save the "
                "checkpoint again with only tensors and plain Python values in extra"
            ) from error
        except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as error:
            raise CheckpointError(
                f"{path} is damaged (truncated or corrupted: {error}); resume from an earlier checkpoint"
            ) from error


def _read_payload(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """The dict :func:`save_checkpoint` wrote to ``path``; a :class:`CheckpointError` for anything else."""
    payload = _unpickle(path, map_location)
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"{path} holds a {type(payload).__name__}, not a checkpoint (save_checkpoint writes a dict with "
            "model, optimizer, scheduler and RNG states); load it with torch.load instead"
        )
    if "format_version" not in payload:
        keys = sorted(map(str, payload))
        shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
        raise CheckpointError(
            f"{path} holds a dict without 'format_version' (keys: {shown}), "
            "so save_checkpoint did not write it; a bare state_dict loads with "
            "model.load_state_dict(torch.load(path))"
        )
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {payload['format_version']!r}, expected {FORMAT_VERSION}"
        )
    return payload


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

    Raises:
        FileNotFoundError: ``path`` does not exist. ``IsADirectoryError``: it is a folder.
        CheckpointError: the file is not a complete checkpoint written by :func:`save_checkpoint`: empty,
            truncated, not a zip archive, holding pickled objects (refused, they could run code), or holding
            something else than a checkpoint dict (a bare tensor or ``state_dict``).
    """
    if not isinstance(map_location, (str, torch.device)):
        raise TypeError(f"map_location must be a device name such as 'cpu', got {map_location!r}")
    try:
        torch.device(map_location)
    except RuntimeError:
        raise ValueError(f"map_location must be a device name such as 'cpu', got {map_location!r}") from None
    payload = _read_payload(Path(path), map_location)
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
