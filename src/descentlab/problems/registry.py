"""The registry of problems, filled by the modules of :mod:`descentlab.problems` at import."""

from __future__ import annotations

import difflib

from descentlab.problems.base import Problem

_PROBLEMS: dict[str, Problem] = {}


def register(problem: Problem) -> Problem:
    """Add ``problem`` to the registry (names are unique) and return it."""
    if problem.name in _PROBLEMS:
        raise ValueError(f"a problem named {problem.name!r} is already registered")
    _PROBLEMS[problem.name] = problem
    return problem


def get_problem(name: str) -> Problem:
    """Return the registered problem ``name``; an unknown name raises ``ValueError`` listing the known."""
    try:
        return _PROBLEMS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _PROBLEMS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown problem {name!r}.{hint} Known problems: {', '.join(sorted(_PROBLEMS))}"
        ) from None


def all_problems() -> list[Problem]:
    """Every registered problem, in registration order."""
    return list(_PROBLEMS.values())
