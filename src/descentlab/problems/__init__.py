"""Problems to train on: 2-D test functions, textbook models and small data sets, all offline.

Every problem is a :class:`~descentlab.problems.base.Problem` in one registry; look one up with
:func:`get_problem` and list them with :func:`all_problems`. Real MNIST / Fashion-MNIST come from a
folder of IDX files the user provides: :func:`mnist_problem` (see :mod:`descentlab.problems.mnist`).

Learning problems on data sets evaluate three fixed splits (``Task.evaluate`` validation,
``Task.evaluate_train`` a fixed training subset, ``Task.evaluate_test`` test); network problems take
model options (``Problem.options``, see :mod:`descentlab.problems.networks`); deterministic problems
move their start with the seed (:func:`~descentlab.problems.seeding.perturbed_start`); and
``Problem.fingerprint()`` ties results to the problem and its data.
"""

from descentlab.problems.base import OptionDomain, Problem, Task
from descentlab.problems.registry import all_problems, get_problem, register

# Importing these modules registers their problems, in this order (the order of `all_problems()`).
from descentlab.problems import (  # noqa: F401  isort: skip
    functions2d,
    textbook,
    quadratic,
    digits,
    mnist_1d,
    gaussian_mlp,
    mnist,
)
from descentlab.problems.idx import IdxFormatError, load_idx  # isort: skip
from descentlab.problems.mnist import mnist_problem  # isort: skip

__all__ = [
    "IdxFormatError",
    "OptionDomain",
    "Problem",
    "Task",
    "all_problems",
    "get_problem",
    "load_idx",
    "mnist_problem",
    "register",
]
