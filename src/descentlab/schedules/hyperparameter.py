"""Addressing one hyperparameter inside an optimizer's param groups: ``"lr"``, ``"momentum"``,
``"betas[0]"``, ``"weight_decay"``, ``"eps"``, ...

A key is a param-group entry name, optionally followed by ``[i]`` to address one element of a tuple
entry such as Adam's ``betas``. Reading and writing keep the entry's type: a tuple stays a tuple with
only element ``i`` replaced, and a tensor-valued entry (torch allows ``lr`` as a tensor) is filled in
place so compiled optimizers that captured it see the change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer

KEY_PATTERN = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\[(?P<index>\d+)\])?$")


@dataclass(frozen=True)
class HyperparameterKey:
    """One schedulable param-group value: entry ``name`` and, for tuple entries, element ``index``."""

    name: str
    index: int | None = None

    @classmethod
    def parse(cls, key: str) -> HyperparameterKey:
        """Parse ``"momentum"`` or ``"betas[1]"``; raises ``ValueError`` on anything else."""
        match = KEY_PATTERN.match(key) if isinstance(key, str) else None
        if match is None:
            raise ValueError(f"hyperparameter key must look like 'momentum' or 'betas[0]', got {key!r}")
        index = match.group("index")
        return cls(match.group("name"), None if index is None else int(index))

    def __str__(self) -> str:
        return self.name if self.index is None else f"{self.name}[{self.index}]"

    @property
    def initial_name(self) -> str:
        """The param-group entry that remembers the starting value (``initial_lr`` for ``lr``, as torch)."""
        return f"initial_{self}"

    def read(self, group: dict[str, Any], group_index: int = 0) -> float:
        """Return the current value in ``group`` as a float, with a clear error when it is missing."""
        if self.name not in group:
            available = ", ".join(sorted(k for k in group if k != "params"))
            raise ValueError(
                f"param_groups[{group_index}] has no {self.name!r} to schedule; it has: {available}"
            )
        entry = group[self.name]
        if self.index is None:
            return float(entry)
        if not isinstance(entry, (tuple, list)) or self.index >= len(entry):
            raise ValueError(
                f"param_groups[{group_index}][{self.name!r}] = {entry!r} has no element {self.index}; "
                f"use a key like '{self.name}[0]' only for tuple entries"
            )
        return float(entry[self.index])

    def write(self, group: dict[str, Any], value: float) -> None:
        """Set the value in ``group``, keeping the entry's type (float, tensor, tuple)."""
        if self.index is None:
            group[self.name] = fill_like(group[self.name], value)
            return
        entry = group[self.name]
        elements = list(entry)
        elements[self.index] = fill_like(elements[self.index], value)
        group[self.name] = type(entry)(elements)


def fill_like(current: Any, value: float) -> Any:
    """Return ``value`` in the form of ``current``: a tensor is filled in place, anything else is a float."""
    if isinstance(current, torch.Tensor):
        current.fill_(value)
        return current
    return float(value)


def momentum_key(optimizer: Optimizer) -> str:
    """The key that plays the role of momentum: ``"betas[0]"`` for Adam-style optimizers, else ``"momentum"``.

    This is torch's ``OneCycleLR`` rule (``use_beta1``); raises ``ValueError`` when the optimizer has
    neither.
    """
    group = optimizer.param_groups[0]
    if "betas" in group:
        return "betas[0]"
    if "momentum" in group:
        return "momentum"
    raise ValueError(
        f"{type(optimizer).__name__} has neither 'betas' nor 'momentum' in its param groups, so there is "
        "no momentum to cycle"
    )
