"""The settings a run accepts, declared once: every ``--set``/``--vary`` key, config-file key and spec part.

A setting is ``KEY=VALUE``. Keys fall into six parts of a :class:`~descentlab.lab.spec.RunSpec`:

- **budget**: ``steps``, ``epochs``, ``batch_size`` (a whole number, or ``full`` for full batch);
- **optimizer**: ``variant``, and any keyword of the optimizer's constructor (``lr``, ``momentum``,
  ``betas``, ``eps``, ``weight_decay``, ...), checked against that signature;
- **schedule**: ``schedule`` (a name of :data:`SCHEDULE_NAMES`), ``warmup`` (steps, or a fraction of the
  budget below 1), ``momentum_schedule`` (``constant`` or ``onecycle``) and ``schedule.<option>`` for the
  schedule's own options (``schedule.final=0.01``, ``schedule.patience=3``);
- **techniques** of :mod:`descentlab.training` and stopping rules: :data:`TECHNIQUES`;
- **model** options the problem declares (``dropout``, ``batch_norm``, ``init``, ``activation``, ...);
- **record**: optional instrumentation, :data:`RECORD_KINDS` and ``histogram_steps``.

A key may name one optimizer: ``SGD.lr=0.95`` applies to SGD only and wins over a plain ``lr``.
Values given as text (flags) and values from TOML/YAML go through the same conversion, so ``steps =
true`` is an error in both, not one step.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

SCHEDULE_NAMES = (
    "constant",
    "step",
    "power",
    "exponential",
    "piecewise",
    "cosine",
    "restarts",
    "polynomial",
    "linear",
    "onecycle",
    "wsd",
    "plateau",
)
"""Learning-rate schedules of :mod:`descentlab.schedules` the lab can run (see ``lab/schedules.py``)."""

NONFINITE_POLICIES = ("raise", "skip", "zero")
DECAY_GROUPS = ("bias_and_norm", "all")
RECORD_KINDS = ("layer_grad_norms", "activations", "preactivations", "histograms", "line_search")


class SettingError(ValueError):
    """A setting with an unknown key or a value of the wrong type or range; the message names the key."""


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) else None


def _from_text(value: Any, convert: Callable[[str], Any], error: str) -> Any:
    """``convert(text)`` for text (``error`` when it fails), any other value as it is."""
    text = _text(value)
    if text is None:
        return value
    try:
        return convert(text)
    except ValueError:
        raise SettingError(f"{error}, got {text!r}") from None


def parse_int(key: str, value: Any, minimum: int = 0) -> int:
    """A whole number ``>= minimum`` from an int or its text; bools and floats are refused."""
    value = _from_text(value, int, f"{key} must be a whole number >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingError(f"{key} must be a whole number >= {minimum}, got {value!r}")
    if value < minimum:
        raise SettingError(f"{key} must be a whole number >= {minimum}, got {value}")
    return value


def parse_float(key: str, value: Any, *, low: float = -math.inf, low_open: bool = False) -> float:
    """A finite number (``> low`` or ``>= low``) from a number or its text; bools are refused."""
    value = _from_text(value, float, f"{key} must be a number")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingError(f"{key} must be a number, got {value!r}")
    value = float(value)
    bad_low = value <= low if low_open else value < low
    if not math.isfinite(value) or bad_low:
        bound = "" if low == -math.inf else f" {'>' if low_open else '>='} {low:g}"
        raise SettingError(f"{key} must be a finite number{bound}, got {value}")
    return value


def parse_bool(key: str, value: Any) -> bool:
    """``true``/``false`` (any case), ``1``/``0``, or a real bool; anything else is an error."""
    text = _text(value)
    if text is not None:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise SettingError(f"{key} must be true or false, got {text!r}")
    if isinstance(value, bool):
        return value
    raise SettingError(f"{key} must be true or false, got {value!r}")


def parse_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (case-sensitive text)."""
    if not isinstance(value, str) or value.strip() not in choices:
        raise SettingError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value.strip()


def parse_batch_size(key: str, value: Any) -> int | str:
    """A minibatch size >= 1, or ``full`` for the whole training set in every step."""
    if isinstance(value, str) and value.strip().lower() == "full":
        return "full"
    return parse_int(key, value, minimum=1)


def parse_generic(value: Any) -> Any:
    """An optimizer hyperparameter: numbers, bools and tuples (``0.9,0.99`` or ``(0.9, 0.99)``) from text.

    Values that are already typed (from TOML/YAML) keep their type; lists become tuples.
    """
    if isinstance(value, list | tuple):
        return tuple(parse_generic(item) for item in value)
    text = _text(value)
    if text is None:
        return value
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    if "," in text:
        return tuple(parse_generic(part) for part in text.split(",") if part.strip())
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _fraction_or_steps(key: str, value: Any) -> int | float:
    number = parse_float(key, value, low=0.0)
    if number < 1:
        return number
    if number != int(number):
        raise SettingError(f"{key} is a step count (>= 1) or a fraction of the budget (< 1), got {number}")
    return int(number)


def _items(value: Any) -> list[Any]:
    """A list as it is, or text split on commas (``;`` also separates, for values inside ``--vary``)."""
    return list(value) if isinstance(value, list | tuple) else str(value).replace(";", ",").split(",")


def _steps_list(key: str, value: Any) -> tuple[int, ...]:
    items = _items(value)
    steps = tuple(parse_int(key, item) for item in items if str(item).strip())
    if not steps:
        raise SettingError(f"{key} needs at least one step, e.g. {key}=0,100")
    return steps


def _record_kinds(key: str, value: Any) -> tuple[str, ...]:
    items = _items(value)
    kinds = tuple(sorted({parse_choice(key, str(item).strip(), RECORD_KINDS) for item in items if item}))
    return kinds


def _patterns(key: str, value: Any) -> tuple[str, ...]:
    items = _items(value)
    patterns = tuple(str(item).strip() for item in items if str(item).strip())
    if not patterns:
        raise SettingError(f"{key} needs module names or globs, e.g. {key}=0 (the first layer)")
    return patterns


@dataclass(frozen=True)
class Field:
    """One declared setting: its spec part, its parser and a one-line help text."""

    part: str
    parse: Callable[[str, Any], Any]
    help: str


def _positive(key: str, value: Any) -> float:
    return parse_float(key, value, low=0.0, low_open=True)


def _non_negative(key: str, value: Any) -> float:
    return parse_float(key, value, low=0.0)


TECHNIQUES: dict[str, Field] = {
    "clip_norm": Field("techniques", _positive, "clip the global gradient 2-norm to this value"),
    "clip_value": Field("techniques", _positive, "clip every gradient entry to [-v, v]"),
    "nonfinite": Field(
        "techniques",
        lambda key, value: parse_choice(key, value, NONFINITE_POLICIES),
        "what clipping does with a NaN/Inf gradient: raise, skip (the step) or zero",
    ),
    "max_norm": Field("techniques", _positive, "max-norm constraint on each unit's incoming weights"),
    "l1": Field("techniques", _non_negative, "L1 penalty strength added to the loss"),
    "l2": Field("techniques", _non_negative, "L2 penalty: (strength / 2) * sum of w^2 added to the loss"),
    "proximal_l1": Field("techniques", _non_negative, "proximal L1: soft-threshold by lr * strength"),
    "decay_groups": Field(
        "techniques",
        lambda key, value: parse_choice(key, value, DECAY_GROUPS),
        "which parameters weight_decay reaches: bias_and_norm (not biases/norm parameters) or all",
    ),
    "freeze": Field("techniques", _patterns, "module names or globs frozen at the start"),
    "unfreeze_at": Field("techniques", lambda k, v: parse_int(k, v, 1), "step at which frozen layers thaw"),
    "early_stopping": Field(
        "techniques",
        lambda k, v: parse_int(k, v, 1),
        "stop after this many evaluations without a better validation metric; keep the best weights",
    ),
    "grad_tol": Field("techniques", _positive, "stop when the gradient norm falls below this"),
}

FIELDS: dict[str, Field] = {
    "steps": Field("budget", lambda k, v: parse_int(k, v, 1), "optimizer steps per run"),
    "epochs": Field("budget", lambda k, v: parse_int(k, v, 1), "passes over the training data"),
    "batch_size": Field("budget", parse_batch_size, "minibatch size, or full"),
    "variant": Field("optimizer", lambda k, v: str(v).strip(), "optimizer variant (descentlab optimizers)"),
    "schedule": Field(
        "schedule", lambda k, v: parse_choice(k, v, SCHEDULE_NAMES), "learning-rate schedule name"
    ),
    "warmup": Field(
        "schedule", _fraction_or_steps, "linear warm-up: steps, or a fraction (< 1) of the budget"
    ),
    "momentum_schedule": Field(
        "schedule",
        lambda k, v: parse_choice(k, v, ("constant", "onecycle")),
        "momentum (or beta1) schedule: constant or onecycle (0.95 -> 0.85 -> 0.95)",
    ),
    **TECHNIQUES,
    "record": Field("record", _record_kinds, f"instrumentation: {', '.join(RECORD_KINDS)}"),
    "histogram_steps": Field("record", _steps_list, "steps at which activation histograms are taken"),
    "evaluations": Field(
        "record", lambda k, v: parse_int(k, v, 1), "validation evaluations per run (default 50)"
    ),
}
"""Every lab setting other than optimizer hyperparameters, schedule options and model options."""


# Where each schedule setting sits in a spec's schedule dict (its options keep their own names).
_SCHEDULE_KEYS = {"schedule": "name", "warmup": "warmup", "momentum_schedule": "momentum"}


def constructor_keywords(cls: type) -> set[str]:
    """The keyword arguments an optimizer class accepts (other than ``params``)."""
    parameters = inspect.signature(cls.__init__).parameters
    return {name for name in parameters if name not in ("self", "params")}


@dataclass
class Settings:
    """Settings split into spec parts (all values parsed)."""

    budget: dict[str, Any]
    hyperparameters: dict[str, Any]
    variant: str | None
    schedule: dict[str, Any]
    techniques: dict[str, Any]
    model: dict[str, Any]
    record: dict[str, Any]


def split_settings(
    settings: Mapping[str, Any], optimizer_class: type, model_options: Mapping[str, Any]
) -> Settings:
    """Sort ``settings`` (already resolved for one optimizer) into spec parts, parsing every value.

    Raises:
        SettingError: naming the key when it is neither a lab setting, a hyperparameter of
            ``optimizer_class``, a schedule option, nor a model option of the problem. A wrapper
            (Lookahead, SAM, ...) takes any key: it hands the ones it lacks to its base, which checks them.
    """
    from descentlab.optim.registry import passes_on_keywords

    parts = Settings({}, {}, None, {}, {}, {}, {})
    keywords = constructor_keywords(optimizer_class)
    for key, value in settings.items():
        if key in FIELDS:
            field = FIELDS[key]
            parsed = field.parse(key, value)
            if field.part == "optimizer":
                parts.variant = parsed
            elif field.part == "schedule":
                parts.schedule[_SCHEDULE_KEYS[key]] = parsed
            else:
                getattr(parts, field.part)[key] = parsed
        elif key.startswith("schedule."):
            parts.schedule[key.removeprefix("schedule.")] = parse_generic(value)
        elif key in model_options:
            parts.model[key] = parse_generic(value)
        elif key in keywords or passes_on_keywords(optimizer_class):
            parts.hyperparameters[key] = parse_generic(value)
        else:
            raise SettingError(
                f"unknown setting {key!r} for {optimizer_class.__name__}: not a lab setting "
                f"({', '.join(sorted(FIELDS))}), not a hyperparameter of {optimizer_class.__name__} "
                f"({', '.join(sorted(keywords))}) and not a model option of the problem "
                f"({', '.join(sorted(model_options)) or 'it has none'})"
            )
    if "lr" in parts.hyperparameters:
        parts.hyperparameters["lr"] = parse_float("lr", parts.hyperparameters["lr"], low=0.0, low_open=True)
    if "steps" in parts.budget and "epochs" in parts.budget:
        raise SettingError("give steps or epochs, not both")
    if parts.schedule:
        parts.schedule.setdefault("name", "constant")
    return parts


def resolve_for_optimizer(settings: Mapping[str, Any], optimizer_name: str) -> dict[str, Any]:
    """Plain keys, then ``Optimizer.key`` keys of ``optimizer_name`` (case-insensitive) on top.

    Keys qualified with another optimizer are dropped; a key with a dot that is not ``schedule.`` and
    whose prefix is no optimizer is left as it is, so :func:`split_settings` reports it.
    """
    from descentlab.optim.registry import optimizer_classes

    known = optimizer_classes()
    plain, qualified = {}, {}
    for key, value in settings.items():
        prefix, dot, rest = key.partition(".")
        if dot and prefix.lower() in known:
            if prefix.lower() == optimizer_name.lower():
                qualified[rest] = value
        else:
            plain[key] = value
    return {**plain, **qualified}
