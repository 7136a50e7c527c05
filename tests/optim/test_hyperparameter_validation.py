"""Hyperparameter validation for every optimizer in the registry, in every way a value can arrive.

The rows come from the registry and each class's constructor signature (float, int, bool and pair
defaults), not from the validation tables under test, so a new optimizer or argument is covered
automatically and a check that is missing from a table fails here.
"""

from __future__ import annotations

import inspect
import math
import re

import pytest
import torch

import descentlab.optim as dl
from descentlab.optim.registry import optimizer_classes

CLASSES = list(optimizer_classes().values())
NOT_GROUP_KEYS = {"seed", "option"}  # SVRG's constructor-only arguments, not group hyperparameters


def _arguments(cls):
    """name -> (annotation as written, default) of every constructor argument with a default."""
    return {
        name: (str(parameter.annotation), parameter.default)
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if parameter.default is not inspect.Parameter.empty and name not in NOT_GROUP_KEYS
    }


def _defaults(cls):
    return {name: default for name, (_, default) in _arguments(cls).items()}


def _bad_values(cls):
    """(argument, bad value, exception type) for every argument, from its annotation and default."""
    rows = []
    for name, (annotation, default) in _arguments(cls).items():
        if annotation == "bool":
            rows += [(name, "yes", TypeError), (name, 1.0, TypeError)]
        elif annotation == "bool | None":
            rows += [(name, "yes", TypeError)]
        elif annotation == "str":
            rows += [(name, "nope", ValueError)]
        elif annotation == "int":
            rows += [(name, "abc", TypeError), (name, 2.5, TypeError)]
        elif annotation.startswith("float"):
            rows += [(name, math.inf, ValueError), (name, math.nan, ValueError), (name, "abc", TypeError)]
        elif isinstance(default, tuple) and len(default) == 2:
            rows += [(name, (default[0], -1.5), ValueError), (name, (math.nan, default[1]), ValueError)]
    return rows


ROWS = [(cls, name, value, error) for cls in CLASSES for name, value, error in _bad_values(cls)]


def _row_id(row):
    cls, name, value, _ = row
    return f"{cls.__name__}-{name}={value!r}"


def _param():
    return torch.zeros(2, requires_grad=True)


def _names_the_value(name, value):
    if isinstance(value, tuple):  # a pair is reported entry by entry: betas[1] must be ..., got -1.5
        index = 1 if value[1] == -1.5 else 0
        name, value = f"{name}[{index}]", value[index]
    return re.escape(name) + ".*" + re.escape(repr(value))


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_bad_value_is_refused_as_default_in_a_group_and_when_loaded(row):
    cls, name, value, error = row
    pattern = _names_the_value(name, value)
    with pytest.raises(error, match=pattern):
        cls([_param()], **{name: value})
    with pytest.raises(error, match=pattern):
        cls([{"params": [_param()], name: value}])
    optimizer = cls([_param()])
    saved = optimizer.state_dict()
    saved["param_groups"][0][name] = value
    with pytest.raises(error, match=pattern):
        optimizer.load_state_dict(saved)
    assert optimizer.param_groups[0][name] == _defaults(cls)[name]  # nothing was loaded


MULTI_GROUP_ROWS = [row for row in ROWS if row[0] not in (dl.LineSearchGD, dl.Newton)]


@pytest.mark.parametrize("row", MULTI_GROUP_ROWS, ids=_row_id)
def test_bad_value_is_refused_by_add_param_group(row):
    cls, name, value, error = row
    optimizer = cls([_param()])
    with pytest.raises(error, match=_names_the_value(name, value)):
        optimizer.add_param_group({"params": [_param()], name: value})
    assert len(optimizer.param_groups) == 1


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_lr_bounds_and_tensor_lr(cls):
    with pytest.raises(ValueError, match=r"lr must be <= 1e\+30.*got 1e\+300"):
        cls([_param()], lr=1e300)
    with pytest.raises(ValueError, match=r"lr must be <= 1e\+30.*got 1e\+300"):
        cls([{"params": [_param()], "lr": 1e300}])
    cls([{"params": [_param()], "lr": torch.tensor(0.5)}])  # a 1-element tensor lr is allowed, as in torch
    with pytest.raises(ValueError, match="lr must be a number or a 1-element tensor"):
        cls([_param()], lr=torch.tensor([0.1, 0.2]))


EPS_CLASSES = [cls for cls in CLASSES if "eps" in _defaults(cls)]


@pytest.mark.parametrize("cls", EPS_CLASSES, ids=lambda c: c.__name__)
def test_eps_zero_is_refused(cls):
    # Every eps guards a denominator that is 0 on a coordinate whose gradients were all 0 (0 / 0 = NaN);
    # Adafactor's eps is a pair whose first entry does (the second floors RMS(param)).
    pair = isinstance(_defaults(cls)["eps"], tuple)
    zero, pattern = (
        ((0.0, 1e-3), r"eps\[0\] must be > 0, got 0") if pair else (0.0, r"eps must be > 0, got 0")
    )
    with pytest.raises(ValueError, match=pattern):
        cls([_param()], eps=zero)
    with pytest.raises(ValueError, match=pattern):
        cls([{"params": [_param()], "eps": zero}])


def test_the_issue_examples():
    p = _param()
    with pytest.raises(ValueError, match=re.escape("betas[1] must be in [0, 1), got 1.5")):
        dl.Adam([{"params": [p], "betas": (0.9, 1.5), "lr": 0.1}])
    with pytest.raises(ValueError, match="lr must be >= 0, got -1"):
        dl.Adam([{"params": [p], "lr": -1}])
    with pytest.raises(ValueError, match="dampening must be finite, got nan"):
        dl.SGD([p], dampening=math.nan)
    with pytest.raises(TypeError, match="dampening must be a real number, got 'abc'"):
        dl.SGD([p], dampening="abc")
    with pytest.raises(TypeError, match="nesterov must be True or False, got 'yes'"):
        dl.SGD([p], momentum=0.9, nesterov="yes")
    with pytest.raises(ValueError, match="weight_decay must be finite, got inf"):
        dl.AdamW([p], weight_decay=math.inf)


def test_cross_key_rules_apply_to_groups_too():
    optimizer = dl.SGD([_param()], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        optimizer.add_param_group({"params": [_param()], "nesterov": True, "momentum": 0.0})
    with pytest.raises(ValueError, match="amsgrad=True"):
        dl.Adam([{"params": [_param()], "variant": "amsgrad-paper"}])
    with pytest.raises(ValueError, match="unknown variant 'efficient-eps' for AdamW"):
        dl.AdamW([_param()]).load_state_dict(dl.Adam([_param()], variant="efficient-eps").state_dict())


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_lion_makes_a_non_finite_gradient_visible_instead_of_freezing_the_coordinate(bad):
    x = torch.tensor([1.0, 2.0, -3.0], dtype=torch.float64, requires_grad=True)
    optimizer = dl.Lion([x], lr=0.1, betas=(0.9, 0.99))
    x.grad = torch.tensor([0.5, bad, -0.5], dtype=torch.float64)
    optimizer.step()
    assert math.isnan(x[1].item())
    # the finite coordinates take Lion's step theta - lr * sign(c), c = (1 - beta1) g
    assert x[0].item() == pytest.approx(0.9, rel=1e-15) and x[2].item() == pytest.approx(-2.9, rel=1e-15)
