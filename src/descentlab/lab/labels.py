"""Short readable names of configurations: ``SGD lr=0.1 momentum=0.9 · cosine warmup=50 · batch 16``.

A label lists what the spec sets explicitly, in a fixed order: the optimizer (its class name and
variant) with its hyperparameters (``lr`` first), the schedule, the techniques, the model options,
then the batch size and budget. Settings left at their defaults are not named. Two different
configurations can only share a label when they differ in nothing a label shows (the data
fingerprint or the instrumentation); the report then adds the configuration id.
"""

from __future__ import annotations

from typing import Any

from descentlab.lab.spec import RunSpec


def format_value(value: Any) -> str:
    """A value as it reads best in a label: ``0.1``, ``1e-08``, ``0.9,0.999``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ",".join(format_value(item) for item in value)
    return str(value)


def _pairs(items: Any, skip: tuple[str, ...] = ()) -> str:
    return " ".join(f"{key}={format_value(value)}" for key, value in items if key not in skip)


def optimizer_display_name(name: str) -> str:
    """The optimizer's class name (``adagrad`` -> ``Adagrad``), or ``name`` when not registered."""
    from descentlab.optim.registry import optimizer_classes

    cls = optimizer_classes().get(name)
    return cls.__name__ if cls is not None else name


def configuration_label(spec: RunSpec) -> str:
    """The label of ``spec``'s configuration (the seed is not part of it)."""
    hyperparameters = sorted(spec.hyperparameters, key=lambda item: (item[0] != "lr", item[0]))
    head = optimizer_display_name(spec.optimizer)
    if spec.variant:
        head += f"({spec.variant})"
    parts = [" ".join(filter(None, [head, _pairs(hyperparameters)]))]
    schedule = spec.schedule_dict
    if schedule and (schedule.get("name") != "constant" or len(schedule) > 1):
        name = schedule.get("name", "constant")
        parts.append(" ".join(filter(None, [name, _pairs(sorted(schedule.items()), skip=("name",))])))
    if spec.techniques:
        parts.append(_pairs(spec.techniques))
    if spec.model:
        parts.append(_pairs(spec.model))
    budget = []
    if spec.batch_size is not None:
        budget.append("full batch" if spec.batch_size == "full" else f"batch {spec.batch_size}")
    if spec.steps is not None:
        budget.append(f"{spec.steps} steps")
    if spec.epochs is not None:
        budget.append(f"{spec.epochs} epochs")
    if budget:
        parts.append(" ".join(budget))
    return " · ".join(parts)
