"""Name -> class lookup of every descentlab optimizer, used by the CLI, the lab and the tests."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

import torch
from torch.optim import Optimizer


def optimizer_classes() -> dict[str, type[Optimizer]]:
    """Every public optimizer of :mod:`descentlab.optim`, keyed by lower-case class name."""
    import descentlab.optim as optim

    classes = {}
    for name in optim.__all__:
        value = getattr(optim, name)
        if isinstance(value, type) and issubclass(value, Optimizer) and getattr(value, "reference", ""):
            classes[name.lower()] = value
    return classes


def get_optimizer_class(name: str) -> type[Optimizer]:
    """The optimizer class called ``name`` (case-insensitive); unknown names list the known ones."""
    classes = optimizer_classes()
    try:
        return classes[name.lower()]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), classes, n=3)
        hint = f" Did you mean {', '.join(classes[c].__name__ for c in close)}?" if close else ""
        known = ", ".join(cls.__name__ for cls in classes.values())
        raise ValueError(f"unknown optimizer {name!r}.{hint} Known optimizers: {known}") from None


def step_protocol(cls: type[Optimizer]) -> str:
    """How a training loop must call ``cls.step`` (see ``RuleOptimizer.step_protocol``).

    Classes outside descentlab follow torch's convention: ``"closure"`` for ``LBFGS``, else
    ``"gradient"``.
    """
    if cls is torch.optim.LBFGS:
        return "closure"
    return getattr(cls, "step_protocol", "gradient")


def passes_on_keywords(cls: type) -> bool:
    """Whether ``cls.__init__`` takes ``**keywords`` it hands on (a wrapper's base hyperparameters).

    The lab and the tuner then accept any keyword for it; the base it builds checks them.
    """
    parameters = inspect.signature(cls.__init__).parameters.values()
    return any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters)


def resolve_optimizer_class(name_or_class: str | type[Optimizer]) -> type[Optimizer]:
    """A descentlab name (case-insensitive, see :func:`get_optimizer_class`) or any ``Optimizer`` class."""
    if isinstance(name_or_class, str):
        return get_optimizer_class(name_or_class)
    if isinstance(name_or_class, type) and issubclass(name_or_class, Optimizer):
        return name_or_class
    raise TypeError(
        "expected an optimizer name such as 'AdamW' or a torch.optim.Optimizer subclass, "
        f"got {name_or_class!r}"
    )


def make_optimizer(name: str | type[Optimizer], params: Any, **hyperparameters: Any) -> Optimizer:
    """Build optimizer ``name`` (or class) over ``params``; unknown hyperparameters raise a ``ValueError``."""
    cls = resolve_optimizer_class(name)
    try:
        return cls(params, **hyperparameters)
    except TypeError as error:
        raise ValueError(f"bad hyperparameters for {cls.__name__}: {error}") from None


def _variants_text(cls: type) -> str:
    """``variants`` (default first); a wrapper names the group key that selects its forms instead."""
    form_key = getattr(cls, "form_key", "")
    if form_key:
        return f"{form_key}: {', '.join(cls.hyperparameters[form_key].values)}"
    return ", ".join(getattr(cls, "variants", ())) or "-"


def optimizer_table() -> str:
    """A plain-text table of every optimizer: name, reference, variants (default first)."""
    rows = [("optimizer", "reference", "variants")]
    for cls in optimizer_classes().values():
        rows.append((cls.__name__, cls.reference, _variants_text(cls)))
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
