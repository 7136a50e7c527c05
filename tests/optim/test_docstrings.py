"""Every public optimizer documents its update rule, its references and its differences."""

import pytest

from descentlab.optim.registry import optimizer_classes

CLASSES = list(optimizer_classes().values())


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_optimizer_docstring_has_math_references_and_differences(cls):
    doc = cls.__doc__ or ""
    assert ".. math::" in doc, "state the update rule in math"
    assert "References:" in doc, "name the papers or books"
    assert "torch" in doc, "say how it relates to torch.optim (differences, or that torch has none)"
    assert cls.reference, "a short citation for the optimizers table"


def test_every_public_optimizer_is_registered():
    import descentlab.optim as optim

    names = {name.lower() for name in optim.__all__ if isinstance(getattr(optim, name), type)}
    names -= {"direction", "ruleoptimizer"}
    assert names == set(optimizer_classes())
