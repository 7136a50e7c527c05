"""The public API: everything exported is documented, and the docstring examples run."""

import doctest
import inspect

import descentlab.schedules as schedules
from descentlab.schedules import scheduler


def test_every_public_name_and_method_has_a_docstring():
    missing = []
    for name in schedules.__all__:
        item = getattr(schedules, name)
        if not inspect.getdoc(item):
            missing.append(name)
        if inspect.isclass(item):
            for attribute, member in vars(item).items():
                is_public_callable = callable(member) or isinstance(member, property)
                if not attribute.startswith("_") and is_public_callable and not inspect.getdoc(member):
                    missing.append(f"{name}.{attribute}")
    assert not missing, f"public names without a docstring: {missing}"


def test_docstring_examples_run():
    result = doctest.testmod(scheduler)
    assert result.attempted >= 5 and result.failed == 0
