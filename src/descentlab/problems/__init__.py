"""Problems to train on: 2-D test functions, textbook models and small data sets, all offline.

Every problem is a :class:`~descentlab.problems.base.Problem` in one registry; look one up with
:func:`get_problem` and list them with :func:`all_problems`.
"""

from descentlab.problems.base import Problem, Task
from descentlab.problems.registry import all_problems, get_problem, register

# Importing these modules registers their problems.
from descentlab.problems import functions2d, textbook  # noqa: F401  isort: skip

__all__ = ["Problem", "Task", "all_problems", "get_problem", "register"]
