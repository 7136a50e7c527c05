"""Search spaces: which hyperparameters a tuner may change, over which ranges, on which scale.

Each optimizer class declares ``search_space``, a tuple of small declarative dimensions, right after its
``variants``; ``descentlab tune`` (:mod:`descentlab.lab.tuning`) samples it. A dimension names a
constructor keyword (``lr``, ``eps``) or one element of a tuple keyword (``betas[0]``); elements of a
tuple that the space leaves out keep the constructor's default.

Scales: ``linear``; ``log`` (uniform in ``log x``, the textbook choice for rates); ``log1m`` (uniform in
``log(1 - x)``, for averaging coefficients such as momentum and Adam's betas, whose effect is the
horizon ``1 / (1 - x)``). Ranges are always written in the hyperparameter's own units.

Conditions: ``optional=True`` makes the trial first decide whether the hyperparameter is used at all
(unused: the constructor default, e.g. no momentum); ``when="momentum"`` samples a dimension only when
the dimension ``momentum`` was sampled (e.g. ``nesterov`` only with momentum).
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

SCALES = ("linear", "log", "log1m")
"""The scales a :class:`Float` may use (an :class:`Int` takes ``linear`` or ``log``)."""

SIGNIFICANT_DIGITS = 4
"""Sampled floats are rounded to this many significant digits: labels stay readable and a spec's run
id does not hang on the 16th digit; the grid this leaves is far finer than any tuner resolves."""

_ELEMENT = re.compile(r"^(?P<keyword>\w+)\[(?P<index>\d+)\]$")


class Suggester(Protocol):
    """What sampling needs of a trial: Optuna's ``Trial`` has these methods."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def _check_range(name: str, low: float, high: float, scale: str, scales: tuple[str, ...]) -> None:
    if scale not in scales:
        raise ValueError(f"{name}: scale must be one of {', '.join(scales)}, got {scale!r}")
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{name}: the range needs finite low <= high, got {low:g}:{high:g}")
    if scale == "log" and low <= 0:
        raise ValueError(f"{name}: a log scale needs low > 0, got {low:g}; use a linear scale or low > 0")
    if scale == "log1m" and high >= 1:
        raise ValueError(f"{name}: a log1m scale (log of 1 - x) needs high < 1, got {high:g}")


@dataclass(frozen=True)
class Float:
    """A real hyperparameter in ``[low, high]`` on a scale of :data:`SCALES`."""

    name: str
    low: float
    high: float
    scale: str = "linear"
    optional: bool = False
    when: str | None = None

    def __post_init__(self) -> None:
        _check_range(self.name, self.low, self.high, self.scale, SCALES)

    def sample(self, trial: Suggester) -> float:
        """One value from ``trial`` (Optuna's parameter is ``1-NAME`` on the log1m scale)."""
        if self.scale == "log1m":
            rest = trial.suggest_float(f"1-{self.name}", 1 - self.high, 1 - self.low, log=True)
            return _round(1 - rest)
        return _round(trial.suggest_float(self.name, self.low, self.high, log=self.scale == "log"))

    def describe(self) -> str:
        """``low:high:scale``, the ``--space`` syntax."""
        return f"{self.low:g}:{self.high:g}:{self.scale}"


@dataclass(frozen=True)
class Int:
    """A whole-number hyperparameter in ``[low, high]``, on a linear or log scale."""

    name: str
    low: int
    high: int
    scale: str = "linear"
    optional: bool = False
    when: str | None = None

    def __post_init__(self) -> None:
        _check_range(self.name, self.low, self.high, self.scale, ("linear", "log"))

    def sample(self, trial: Suggester) -> int:
        """One value from ``trial``."""
        return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.scale == "log")

    def describe(self) -> str:
        """``low:high:scale``, the ``--space`` syntax."""
        return f"{self.low}:{self.high}:{self.scale}"


@dataclass(frozen=True)
class Categorical:
    """A hyperparameter that takes one of ``choices``."""

    name: str
    choices: tuple[Any, ...]
    optional: bool = False
    when: str | None = None

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError(f"{self.name}: a categorical dimension needs at least one choice")

    def sample(self, trial: Suggester) -> Any:
        """One of the choices, from ``trial``."""
        return trial.suggest_categorical(self.name, list(self.choices))

    def describe(self) -> str:
        """``a|b|c``, the ``--space`` syntax."""
        return "|".join(
            str(choice).lower() if isinstance(choice, bool) else str(choice) for choice in self.choices
        )


def format_choice(choice: Any) -> str:
    """A categorical choice as ``--space`` writes it (``true``, ``false``, ``0.9``)."""
    return str(choice).lower() if isinstance(choice, bool) else str(choice)


Dimension = Float | Int | Categorical
SearchSpace = tuple[Dimension, ...]


def _round(value: float) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def sample(space: SearchSpace, trial: Suggester) -> dict[str, Any]:
    """Values of the dimensions this trial uses, keyed by dimension name (conditions applied)."""
    values: dict[str, Any] = {}
    for dimension in space:
        if dimension.when is not None and dimension.when not in values:
            continue
        if dimension.optional and not trial.suggest_categorical(f"use {dimension.name}", [False, True]):
            continue
        values[dimension.name] = dimension.sample(trial)
    return values


def keyword_of(name: str) -> str:
    """The constructor keyword a dimension sets: ``betas[0]`` -> ``betas``."""
    match = _ELEMENT.match(name)
    return match["keyword"] if match else name


def to_hyperparameters(values: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """Constructor keyword arguments from sampled values; tuple elements left out keep their default."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    hyperparameters: dict[str, Any] = {}
    for name, value in values.items():
        match = _ELEMENT.match(name)
        if match is None:
            hyperparameters[name] = value
            continue
        keyword, index = match["keyword"], int(match["index"])
        elements = list(hyperparameters.get(keyword, defaults[keyword]))
        elements[index] = value
        hyperparameters[keyword] = tuple(elements)
    return hyperparameters


def check_dimension_name(name: str, cls: type) -> None:
    """Raise ``ValueError`` unless ``name`` is a keyword of ``cls`` or an element of a tuple keyword."""
    from descentlab.optim.registry import passes_on_keywords

    parameters = inspect.signature(cls.__init__).parameters
    keywords = sorted(key for key in parameters if key not in ("self", "params"))
    keyword = keyword_of(name)
    if keyword not in keywords and not passes_on_keywords(cls):  # a wrapper's base checks its own
        raise ValueError(
            f"{cls.__name__} has no hyperparameter {keyword!r} (its keywords: {', '.join(keywords)})"
        )
    match = _ELEMENT.match(name)
    if match is not None:
        default = parameters[keyword].default
        if not isinstance(default, tuple) or int(match["index"]) >= len(default):
            raise ValueError(
                f"{cls.__name__}.{keyword} has no element {match['index']} (default {default!r})"
            )


def _parse_choice(text: str) -> Any:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_dimension(name: str, text: str, existing: Dimension | None = None) -> Dimension:
    """A dimension from ``--space`` text: ``LOW:HIGH[:SCALE]`` or ``A|B|...`` (choices).

    An override keeps the condition of the dimension it replaces (``optional``, ``when``), its kind
    (whole numbers stay whole) and, when no scale is written, its scale.

    Raises:
        ValueError: when the text is neither form, or the range does not fit the scale.
    """
    text = str(text).strip()
    conditions = {} if existing is None else {"optional": existing.optional, "when": existing.when}
    if "|" in text:
        choices = tuple(_parse_choice(part) for part in text.split("|") if part.strip())
        return Categorical(name, choices, **conditions)
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"{text!r} is neither LOW:HIGH[:SCALE] nor A|B; e.g. 1e-10:1e-2:log or true|false")
    default_scale = getattr(existing, "scale", "linear")
    scale = parts[2].strip() if len(parts) == 3 else default_scale
    if isinstance(existing, Int):
        try:
            low, high = int(parts[0]), int(parts[1])
        except ValueError:
            raise ValueError(f"{name} takes whole numbers, got {text!r}; e.g. 1:100:log") from None
        return Int(name, low, high, scale, **conditions)
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"{text!r} needs numbers LOW:HIGH, e.g. 1e-10:1e-2:log") from None
    return Float(name, low, high, scale, **conditions)
