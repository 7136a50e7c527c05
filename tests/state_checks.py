"""Bit-exact comparison of nested state dicts (model, optimizer), for restore/resume tests."""

import torch


def state_equal(first: dict, second: dict) -> bool:
    """Whether two (nested) state dicts hold bit-identical tensors and equal other values."""
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(state_equal(first[key], second[key]) for key in first)
    if isinstance(first, (list, tuple)):
        return len(first) == len(second) and all(state_equal(a, b) for a, b in zip(first, second))
    if isinstance(first, torch.Tensor):
        return first.dtype == second.dtype and first.shape == second.shape and torch.equal(first, second)
    return first == second
