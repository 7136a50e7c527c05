"""Hashes of the data a problem trains on, for :attr:`~descentlab.problems.base.Problem.data_fingerprint`.

A fingerprint is the SHA-256 hex digest of a canonical byte encoding: tensors contribute their dtype,
shape and bytes (so reshaping or casting changes the hash), ``bytes`` their length and content, other
values their JSON encoding.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


def fingerprint_values(*values: Any) -> str:
    """SHA-256 hex digest of ``values``: tensors by dtype, shape and bytes; bytes as is; others as JSON."""
    digest = hashlib.sha256()
    for value in values:
        if isinstance(value, torch.Tensor):
            array = value.detach().cpu().contiguous().numpy()
            digest.update(f"tensor {array.dtype.str} {array.shape}\n".encode())
            digest.update(array.tobytes())
        elif isinstance(value, bytes):
            digest.update(f"bytes {len(value)}\n".encode())
            digest.update(value)
        else:
            digest.update(f"json {json.dumps(value, sort_keys=True)}\n".encode())
    return digest.hexdigest()
