"""Hypothesis strategies for public arguments, derived from a signature's annotation and default.

Nothing here reads a validation table: what to generate for an argument comes from how its signature
declares it (``float``, ``int``, ``bool | None``, a ``Literal``, a pair default), so a new argument is
covered as soon as it is declared. Each strategy mixes plausible values with the bad ones the issue lists:
nan, +-inf, negative, huge, wrong types, truthy non-bools on flags, pairs of the wrong length, unknown
names.
"""

from __future__ import annotations

import inspect
import math
import re
import typing
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

# Finite values at most this large are "moderate": accepted moderate values must keep a few steps on a
# small problem finite. Larger accepted values ("valid but huge", e.g. lr = 1e29 <= MAX_LR) may
# legitimately overflow the iterate, so for them only a clean outcome (no crash) is required.
MODERATE = 1e3

HUGE_NUMBERS = (1e29, 1e30, 1e31, 1e300, -1e300, 10**400, 2**63)
NON_FINITE = (math.nan, math.inf, -math.inf)
WRONG_TYPES = ("abc", "", "1.0", None, [0.5], (), {}, b"1", 1j, object)
TRUTHY_NON_BOOLS = (1, 0, 1.0, 0.0, "yes", "no", "True", "false", "", [], [True], 2, -1)
UNKNOWN_NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_ ", min_size=0, max_size=12)

# Numbers near the edges of the usual ranges ([0, 1), > 0, >= 1) and ordinary magnitudes.
EDGE_FLOATS = (0.0, -0.0, 1.0, 1.0 - 1e-12, 1e-300, 5e-324, -1e-12, 0.5, 0.9, 0.999, 1.5, 2.0, -1.0)


def moderate_floats() -> st.SearchStrategy[float]:
    """Finite floats of magnitude <= MODERATE, with the edges of the usual intervals."""
    return st.one_of(
        st.sampled_from(EDGE_FLOATS),
        st.floats(0.0, 1.0),
        st.floats(-MODERATE, MODERATE, allow_nan=False, allow_infinity=False),
    )


def bad_numbers() -> st.SearchStrategy[Any]:
    """Non-finite, huge and wrongly typed values for a number (bools included)."""
    return st.sampled_from((*NON_FINITE, *HUGE_NUMBERS, *WRONG_TYPES, True, False))


def reals() -> st.SearchStrategy[Any]:
    """What a caller might pass for a real argument: mostly moderate numbers, often a bad value."""
    return st.one_of(moderate_floats(), st.integers(-5, 50), bad_numbers())


def integers() -> st.SearchStrategy[Any]:
    """What a caller might pass for an integer argument."""
    return st.one_of(
        st.integers(-3, 20),
        st.sampled_from((0, 1, 2, -1, 2**63, 10**400)),
        st.sampled_from((2.0, 2.5, math.nan, math.inf, True, False, "3", None, [2])),
    )


def flags(optional: bool = False) -> st.SearchStrategy[Any]:
    """True/False (and None when ``optional``), or a truthy/falsy non-bool."""
    allowed = (True, False, None) if optional else (True, False)
    return st.one_of(st.sampled_from(allowed), st.sampled_from(TRUTHY_NON_BOOLS))


def names(valid: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """One of ``valid``, an unknown name, another case of a valid one, or a non-string."""
    strategies = [UNKNOWN_NAMES, st.sampled_from((None, 1, 0.5, True, ["x"]))]
    if valid:
        strategies.insert(0, st.sampled_from(valid))
        texts = [v for v in valid if isinstance(v, str)]
        if texts:
            strategies.append(st.sampled_from(texts).map(lambda v: v.upper() + " "))
    return st.one_of(strategies)


def sequences_of(entry: st.SearchStrategy[Any], length: int) -> st.SearchStrategy[Any]:
    """A tuple/list of ``length`` entries (mostly), of another length, or not a sequence at all."""
    right = st.tuples(*[entry] * length)
    return st.one_of(
        right,
        right.map(list),
        st.lists(entry, min_size=0, max_size=length + 2).map(tuple),
        entry,
        st.sampled_from((None, "0.9,0.99")),
    )


def literal_choices(function: Callable[..., Any], name: str) -> tuple[Any, ...]:
    """The values of a ``Literal[...]`` annotation of ``function``'s argument ``name`` (else ``()``)."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation that does not resolve: no choices to derive
        return ()
    hint = hints.get(name)
    choices: list[Any] = []
    for part in (hint, *typing.get_args(hint)):
        if typing.get_origin(part) is typing.Literal:
            choices += typing.get_args(part)
    return tuple(choices)


def for_argument(
    function: Callable[..., Any], parameter: inspect.Parameter, choices: tuple[Any, ...] = ()
) -> st.SearchStrategy[Any]:
    """Values for one argument, from its annotation text and default (``choices``: valid names)."""
    annotation = str(parameter.annotation).replace("typing.", "")
    default = parameter.default
    optional = "None" in annotation or default is None
    choices = choices or literal_choices(function, parameter.name)
    if choices or annotation in ("str", "str | None") or isinstance(default, str):
        known = tuple(choices) or ((default,) if default is not inspect.Parameter.empty else ())
        return names((*known, None) if optional else known)
    if isinstance(default, tuple) and len(default) == 2:
        return sequences_of(reals(), 2)
    if re.fullmatch(r"bool( \| None)?", annotation) or isinstance(default, bool):
        return flags(optional)
    if re.fullmatch(r"int( \| None)?", annotation):
        return st.one_of(st.none(), integers()) if optional else integers()
    if annotation.startswith("float") or isinstance(default, float):
        return st.one_of(st.none(), reals()) if optional else reals()
    return st.one_of(reals(), integers(), flags())


def is_moderate(value: Any) -> bool:
    """Whether ``value`` holds no finite number above MODERATE in magnitude (see :data:`MODERATE`)."""
    if isinstance(value, (list, tuple)):
        return all(is_moderate(item) for item in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return True
    if isinstance(value, int):
        return abs(value) <= MODERATE
    return not (math.isfinite(value) and abs(value) > MODERATE)


RANGE_WORDS = re.compile(
    r"must|need|choose|one of|allowed|expected|pass |leave |use |>=|<=|> 0|< 1|\bin [\[(]"
    r"|known|it has|above|below|take|applies to|modules are",
    re.IGNORECASE,
)


def value_texts(value: Any) -> set[str]:
    """How a message may spell ``value``: its repr and str, and those of each entry of a sequence."""
    texts = {repr(value), str(value)}
    if isinstance(value, str):  # names are matched case-insensitively and stripped, then reported so
        texts |= {repr(value.strip().lower()), repr(value.strip())}
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        texts.add(str(int(value)))
    if isinstance(value, (list, tuple)):
        for item in value:
            texts |= value_texts(item)
    if isinstance(value, type):
        texts.add(value.__name__)
    return texts


def names_an_argument(message: str, arguments: dict[str, Any]) -> bool:
    """Whether ``message`` names one of ``arguments`` with its value (or an entry of it) and a range.

    The value counts as named when the message holds its repr/str, or its type's name (for a value of
    the wrong type). For a mapping argument (``{key: schedule}``), naming one of its keys with its repr
    names the argument. A range is any of the usual words for what is allowed (``must be``, ``one of``).
    """
    if not RANGE_WORDS.search(message):
        return False
    for name, value in arguments.items():
        keys = value if isinstance(value, dict) else ()
        if any(repr(key) in message or repr(str(key).split("[")[0]) in message for key in keys):
            return True
        # a list argument's entries may be reported one by one, in the singular ("pattern 'x'")
        spelling = rf"{re.escape(name.removesuffix('s'))}s?"
        if not re.search(rf"(?<![A-Za-z_]){spelling}(?![A-Za-z_])", message):
            continue
        if any(text and text in message for text in value_texts(value)):
            return True
        if type(value).__name__ in message:
            return True
    return False
