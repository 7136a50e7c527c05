"""What one run is: a frozen, hashable description with a stable id."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any


def _freeze(mapping: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """A mapping as a sorted tuple of pairs (lists become tuples) so that the spec stays hashable."""
    if not mapping:
        return ()
    return tuple(sorted((str(key), _freeze_value(value)) for key, value in mapping.items()))


def _freeze_value(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze_value(item) for item in value)
    if isinstance(value, dict):
        return _freeze(value)
    return value


def _thaw_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw_value(item) for item in value]
    return value


@dataclass(frozen=True)
class RunSpec:
    """One training run: problem, optimizer and hyperparameters, schedule, seed and budget.

    Attributes:
        problem: registry name of the problem.
        optimizer: registry name of the optimizer (case-insensitive; stored lower-case).
        hyperparameters: optimizer keyword arguments as sorted ``(name, value)`` pairs.
        variant: optimizer ``variant=`` argument, ``None`` for the optimizer's default.
        schedule: learning-rate schedule as sorted pairs of a spec such as ``{"name": "cosine"}``.
        seed: seeds the task (data, minibatch order, initial parameters): equal seeds give paired runs.
        steps: optimizer steps; ``None`` with ``epochs`` unset uses the problem's default budget.
        epochs: budget in passes over the training data (exclusive with ``steps``).
        batch_size: minibatch size, ``None`` for the problem's default.

    The run id is the first 16 hex digits of the SHA-256 of the canonical JSON (sorted keys, no
    spaces), so it is the same in every process and every session.
    """

    problem: str
    optimizer: str
    hyperparameters: tuple[tuple[str, Any], ...] = ()
    variant: str | None = None
    schedule: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = None

    @classmethod
    def create(
        cls,
        problem: str,
        optimizer: str,
        hyperparameters: dict[str, Any] | None = None,
        *,
        variant: str | None = None,
        schedule: dict[str, Any] | None = None,
        seed: int = 0,
        steps: int | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
    ) -> RunSpec:
        """Build a validated spec from plain values (dicts are frozen into sorted pairs)."""
        spec = cls(
            problem=problem,
            optimizer=optimizer.lower(),
            hyperparameters=_freeze(hyperparameters),
            variant=variant,
            schedule=_freeze(schedule),
            seed=seed,
            steps=steps,
            epochs=epochs,
            batch_size=batch_size,
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise ValueError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        for name, value in self.hyperparameters:
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"hyperparameter {name} must be finite, got {value}")
        if self.schedule and "name" not in dict(self.schedule):
            raise ValueError(f"a schedule needs a 'name', got {dict(self.schedule)}")

    @property
    def hyperparameter_dict(self) -> dict[str, Any]:
        """The hyperparameters as keyword arguments (tuples back to lists where JSON had lists)."""
        return {
            name: (tuple(value) if isinstance(value, tuple) else value)
            for name, value in self.hyperparameters
        }

    @property
    def schedule_dict(self) -> dict[str, Any] | None:
        """The schedule spec as a dict, ``None`` for a constant learning rate."""
        return {name: _thaw_value(value) for name, value in self.schedule} or None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "problem": self.problem,
            "optimizer": self.optimizer,
            "hyperparameters": {name: _thaw_value(value) for name, value in self.hyperparameters},
            "variant": self.variant,
            "schedule": self.schedule_dict,
            "seed": self.seed,
            "steps": self.steps,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_dict`."""
        return cls.create(
            data["problem"],
            data["optimizer"],
            data.get("hyperparameters") or {},
            variant=data.get("variant"),
            schedule=data.get("schedule"),
            seed=data.get("seed", 0),
            steps=data.get("steps"),
            epochs=data.get("epochs"),
            batch_size=data.get("batch_size"),
        )

    def canonical_json(self) -> str:
        """The JSON the run id hashes: sorted keys, no whitespace."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        """Stable 16-hex-digit id of the run."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]
