"""What one run is: a frozen, hashable description with a stable id."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
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


MAX_SEED = 2**62
"""Seeds are whole numbers in ``[0, MAX_SEED)``: the store keeps them as 64-bit integers and the
problems add stream offsets to them."""


@dataclass(frozen=True)
class RunSpec:
    """One training run: problem, optimizer and hyperparameters, schedule, techniques, seed and budget.

    Attributes:
        problem: registry name of the problem.
        optimizer: registry name of the optimizer (case-insensitive; stored lower-case).
        hyperparameters: optimizer keyword arguments as sorted ``(name, value)`` pairs.
        variant: optimizer ``variant=`` argument, ``None`` for the optimizer's default.
        schedule: the schedule as sorted pairs of a dict such as ``{"name": "cosine", "warmup": 50}``
            (see :mod:`descentlab.lab.schedules`); empty for a constant learning rate.
        seed: seeds the task (data order, initial parameters, start perturbation): equal seeds give
            paired runs.
        steps: optimizer steps; ``None`` with ``epochs`` unset uses the problem's default budget.
        epochs: budget in passes over the training data (exclusive with ``steps``).
        batch_size: minibatch size, ``"full"`` for the whole training set, ``None`` for the problem's
            default.
        techniques: training techniques and stopping rules as sorted pairs
            (:data:`descentlab.lab.fields.TECHNIQUES`).
        model: model options of the problem (``dropout``, ``batch_norm``, ...) as sorted pairs.
        record: optional instrumentation as sorted pairs (``record``, ``histogram_steps``).
        data: fingerprint of the problem's data and definition (:meth:`Problem.fingerprint`), so that
            changed data never reuses a stored result.

    A *configuration* is everything but the seed: runs that differ only in ``seed`` are replicates.
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
    batch_size: int | str | None = None
    techniques: tuple[tuple[str, Any], ...] = ()
    model: tuple[tuple[str, Any], ...] = ()
    record: tuple[tuple[str, Any], ...] = ()
    data: str | None = None

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
        batch_size: int | str | None = None,
        techniques: dict[str, Any] | None = None,
        model: dict[str, Any] | None = None,
        record: dict[str, Any] | None = None,
        data: str | None = None,
    ) -> RunSpec:
        """Build a validated spec from plain values (dicts are frozen into sorted pairs).

        ``data=None`` takes the registered problem's fingerprint when the problem is registered.
        """
        if data is None:
            data = problem_fingerprint(problem)
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
            techniques=_freeze(techniques),
            model=_freeze(model),
            record=_freeze(record),
            data=data,
        )
        spec.validate()
        return spec

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < MAX_SEED:
            raise ValueError(f"seed must be a whole number in [0, 2**62), got {self.seed!r}")
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        size = self.batch_size
        if size not in (None, "full") and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"batch_size must be a whole number >= 1 or 'full', got {size!r}")
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

    @property
    def technique_dict(self) -> dict[str, Any]:
        """The techniques as a dict (tuples kept as tuples)."""
        return dict(self.techniques)

    @property
    def model_dict(self) -> dict[str, Any]:
        """The model options as a dict."""
        return dict(self.model)

    @property
    def record_dict(self) -> dict[str, Any]:
        """The instrumentation settings as a dict."""
        return dict(self.record)

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
            "techniques": {name: _thaw_value(value) for name, value in self.techniques},
            "model": {name: _thaw_value(value) for name, value in self.model},
            "record": {name: _thaw_value(value) for name, value in self.record},
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_dict` (the stored fingerprint is kept, never recomputed)."""
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
            techniques=data.get("techniques") or {},
            model=data.get("model") or {},
            record=data.get("record") or {},
            data=data.get("data") or "",
        )

    def canonical_json(self) -> str:
        """The JSON the run id hashes: sorted keys, no whitespace."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        """Stable 16-hex-digit id of the run."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    @property
    def configuration_id(self) -> str:
        """Stable 16-hex-digit id of the configuration: the spec without its seed."""
        body = self.to_dict()
        del body["seed"]
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def with_seed(self, seed: int) -> RunSpec:
        """The same configuration on another seed."""
        return replace(self, seed=seed)


def problem_fingerprint(problem: str) -> str:
    """The registered problem's fingerprint, or ``""`` when it is not registered in this process."""
    from descentlab.problems.registry import _PROBLEMS

    registered = _PROBLEMS.get(problem)
    if registered is None:
        return ""
    fingerprint = getattr(registered, "fingerprint", None)
    return fingerprint() if callable(fingerprint) else ""
