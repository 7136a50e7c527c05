"""Every optimizer, any hyperparameters, every way they arrive: a clear refusal, or finite steps.

For each class of the registry and each route a value can take into a param group (constructor
keywords, a param group passed in, ``add_param_group``, a loaded ``state_dict``), hypothesis draws a few
constructor arguments from the signature (see :mod:`strategies`). The outcome must be one of:

- ``ValueError``/``TypeError`` whose message names a drawn argument, its value and what is allowed, and
  (for ``add_param_group`` and ``load_state_dict``) the optimizer left as it was; or
- an optimizer that takes three steps under its step protocol on a small float64 quadratic (with a
  coordinate whose gradient is 0) and leaves every parameter finite. Where an accepted value is huge
  (above :data:`strategies.MODERATE`, e.g. ``lr = 1e29``) the iterate may overflow legitimately, so only
  the steps themselves must not fail.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from descentlab.optim.registry import optimizer_classes, step_protocol
from properties import strategies as gen

CLASSES = list(optimizer_classes().values())
ROUTES = ("constructor", "param_group", "add_param_group", "load_state_dict")


def _arguments(cls) -> dict[str, inspect.Parameter]:
    """The constructor's keyword arguments (everything after ``params``; a wrapper's ``**base_...``
    catch-all is no argument of its own: the base's class has its own rows)."""
    parameters = inspect.signature(cls.__init__).parameters
    return {
        name: p
        for name, p in parameters.items()
        if name not in ("self", "params") and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def _group_keys(cls) -> set[str]:
    """Arguments that live in the param groups (the others, e.g. SVRG's seed, only the constructor sees)."""
    return set(cls(_problem()[0]).defaults)


def _holds_one_group(cls) -> bool:
    """Whether ``cls`` works on one parameter vector and refuses a second param group."""
    optimizer = cls(_problem()[0])
    try:
        optimizer.add_param_group({"params": [torch.zeros(1, dtype=torch.float64, requires_grad=True)]})
    except ValueError:
        return True
    return False


def _problem():
    """Two float64 tensors and a quadratic loss; coordinate [0][2] starts at its minimum (gradient 0)."""
    vector = torch.tensor([1.0, -2.0, 0.0], dtype=torch.float64, requires_grad=True)
    matrix = torch.tensor([[0.5, -0.25], [1.5, 2.0]], dtype=torch.float64, requires_grad=True)
    curvature = torch.tensor([1.0, 3.0, 2.0], dtype=torch.float64)

    def loss():
        return (curvature * vector**2).sum() + 0.5 * (matrix**2).sum()

    return [vector, matrix], loss


def _take_steps(optimizer, loss, count: int = 3) -> None:
    """``count`` steps of ``optimizer`` on ``loss`` under its class's step protocol (lab/protocols.py)."""
    protocol = step_protocol(type(optimizer))

    def closure():
        optimizer.zero_grad(set_to_none=True)
        value = loss()
        value.backward()
        return value

    for _ in range(count):
        if protocol == "gradient":
            closure()
            optimizer.step()
        elif protocol == "closure":
            optimizer.step(closure)
        elif protocol == "closure-no-backward":
            optimizer.step(loss)
        elif protocol == "svrg":
            if optimizer.needs_snapshot:
                optimizer.take_snapshot(closure)  # one "batch" is the whole data here
            optimizer.step(closure)
        else:
            raise AssertionError(f"no driver for step protocol {protocol!r}")


def _build(cls, route: str, drawn: dict):
    """The optimizer with ``drawn`` arriving by ``route``; returns (optimizer, all params, loss)."""
    params, loss = _problem()
    if route == "constructor":
        return cls(params, **drawn), params, loss
    if route == "param_group":
        return cls([{"params": params, **drawn}]), params, loss
    if route == "add_param_group":
        optimizer = cls(params[:1])
        before = copy.deepcopy(optimizer.param_groups)
        try:
            optimizer.add_param_group({"params": params[1:], **drawn})
        except (TypeError, ValueError):
            _assert_unchanged(optimizer, before)
            raise
        return optimizer, params, loss
    optimizer = cls(params)
    saved = optimizer.state_dict()
    saved["param_groups"][0].update(drawn)
    before = copy.deepcopy(optimizer.param_groups)
    try:
        optimizer.load_state_dict(saved)
    except (TypeError, ValueError):
        _assert_unchanged(optimizer, before)
        raise
    return optimizer, params, loss


def _assert_unchanged(optimizer, before) -> None:
    after = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    expected = [{k: v for k, v in g.items() if k != "params"} for g in before]
    assert repr(after) == repr(expected), "a refused group was (partly) kept"


@st.composite
def _drawn_arguments(draw, cls, route: str):
    arguments = _arguments(cls)
    if route != "constructor":
        keys = _group_keys(cls)
        arguments = {name: p for name, p in arguments.items() if name in keys}
    chosen = draw(st.lists(st.sampled_from(sorted(arguments)), min_size=1, max_size=3, unique=True))
    variants = tuple(getattr(cls, "variants", ()))
    return {
        name: draw(gen.for_argument(cls.__init__, arguments[name], variants if name == "variant" else ()))
        for name in chosen
    }


def _may_be_nan(optimizer, params) -> list[torch.Tensor]:
    """Per parameter, the coordinates where a documented formula gives NaN (all False elsewhere).

    Adamax's ``variant="paper"`` has no eps (Kingma & Ba 2015, Algorithm 2), and its docstring says a
    coordinate whose gradients were all 0 takes the step 0/0 = NaN: here that is coordinate [0][2].
    """
    masks = [torch.zeros_like(p, dtype=torch.bool) for p in params]
    for group in optimizer.param_groups:
        paper_adamax = type(optimizer).__name__ == "Adamax" and group["variant"] == "paper"
        if paper_adamax and any(p is params[0] for p in group["params"]):
            masks[0][2] = True
    return masks


def _check_case(cls, route: str, drawn: dict) -> None:
    try:
        optimizer, params, loss = _build(cls, route, drawn)
    except (TypeError, ValueError) as error:
        assert gen.names_an_argument(str(error), drawn), f"{type(error).__name__} names no argument: {error}"
        return
    try:
        _take_steps(optimizer, loss)
    except ValueError as error:  # differentiable=True on leaf parameters is refused at the first step
        assert gen.names_an_argument(str(error), drawn), f"ValueError names no argument: {error}"
        return
    if not gen.is_moderate(list(drawn.values())):
        return  # valid but huge (see the module docstring): the steps ran, overflow is allowed
    masks = _may_be_nan(optimizer, params)
    bad = [i for i, (p, nan) in enumerate(zip(params, masks)) if not (torch.isfinite(p) | nan).all()]
    assert not bad, f"params {bad} not finite after 3 steps: {[p.tolist() for p in params]}"


CASES = [
    pytest.param(cls, route, id=f"{cls.__name__}-{route}")
    for cls in CLASSES
    for route in ROUTES
    if not (route == "add_param_group" and _holds_one_group(cls))
]


@pytest.mark.parametrize(("cls", "route"), CASES)
@given(data=st.data())
def test_hyperparameters_are_refused_clearly_or_give_finite_steps(cls, route, data):
    drawn = data.draw(_drawn_arguments(cls, route), label="hyperparameters")
    _check_case(cls, route, drawn)
