"""Problems to train on: 2-D test functions, textbook models and small data sets, all offline.

Every problem is a :class:`~descentlab.problems.base.Problem` in one registry; look one up with
:func:`get_problem` and list them with :func:`all_problems`. Real MNIST / Fashion-MNIST come from a
folder of IDX files the user provides: :func:`mnist_problem` (see :mod:`descentlab.problems.mnist`).
"""

from descentlab.problems.base import Problem, Task
from descentlab.problems.registry import all_problems, get_problem, register

# Importing these modules registers their problems, in this order (the order of `all_problems()`).
from descentlab.problems import (  # noqa: F401  isort: skip
    functions2d,
    textbook,
    quadratic,
    digits,
    mnist_1d,
    mnist,
)
from descentlab.problems.idx import IdxFormatError, load_idx  # isort: skip
from descentlab.problems.mnist import mnist_problem  # isort: skip

__all__ = [
    "IdxFormatError",
    "Problem",
    "Task",
    "all_problems",
    "get_problem",
    "load_idx",
    "mnist_problem",
    "register",
]
