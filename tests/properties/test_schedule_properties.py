"""Every schedule constructor and scheduler, any arguments: a clear refusal, or finite values.

The constructors are the public names of :mod:`descentlab.schedules` that build a schedule (the
``Schedule`` subclasses and the functions that return one); their arguments are drawn from their
signatures (:mod:`strategies`), nested schedules included. A constructed schedule is evaluated at a few
steps (after a few metric reports for performance schedules) and must give finite floats; with moderate
arguments it must also drive a :class:`~descentlab.schedules.ScheduledLR` on an optimizer for a few steps
without error.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import descentlab.schedules as schedules
from descentlab.schedules import Constant, Cosine, Schedule
from properties import strategies as gen

STEPS = (0, 1, 2, 3, 10, 1000)
METRICS = (1.0, 0.5, 0.5, 2.0, math.nan, 0.5)
NOT_CONSTRUCTORS = {"Schedule", "PlateauState", "HyperparameterKey", "plot", "momentum_key"}
SCHEDULERS = {"ScheduledLR", "HyperparameterScheduler"}


def _constructors() -> dict[str, object]:
    """Public schedule constructors: Schedule subclasses and functions annotated to return a Schedule."""
    found = {}
    for name in schedules.__all__:
        value = getattr(schedules, name)
        if name in NOT_CONSTRUCTORS | SCHEDULERS:
            continue
        is_class = isinstance(value, type) and issubclass(value, Schedule)
        returns = "" if is_class or not callable(value) else inspect.signature(value).return_annotation
        if is_class or returns in ("Schedule", *schedules.__all__):
            found[name] = value
    return found


CONSTRUCTORS = _constructors()
SAMPLE_SCHEDULES = (Constant(), Cosine(10), schedules.Plateau(patience=0))
NOT_SCHEDULES = (None, 1.0, "cosine", lambda step: 1.0)


def _schedule_values() -> st.SearchStrategy:
    return st.one_of(st.sampled_from(SAMPLE_SCHEDULES), st.sampled_from(NOT_SCHEDULES))


def _for_argument(function, parameter: inspect.Parameter) -> st.SearchStrategy:
    """Like :func:`strategies.for_argument`, plus the schedule-typed and list-typed arguments."""
    annotation = str(parameter.annotation)
    if annotation == "Schedule":
        return _schedule_values()
    if annotation.startswith("SequenceOf[tuple["):  # Sequence's segments: (steps, schedule) pairs
        pair = st.tuples(st.one_of(st.none(), gen.integers()), _schedule_values())
        return st.one_of(st.lists(pair, min_size=0, max_size=3), pair, st.none())
    if annotation.startswith("Sequence["):
        entry = gen.integers() if "int" in annotation else gen.reals()
        return st.one_of(st.lists(entry, min_size=0, max_size=4), entry, st.just("1,2"))
    return gen.for_argument(function, parameter)


@st.composite
def _call(draw, function):
    """Keyword arguments for ``function``: every required one, and some optional ones."""
    parameters = inspect.signature(function).parameters
    required = [name for name, p in parameters.items() if p.default is inspect.Parameter.empty]
    optional = [name for name in parameters if name not in required]
    chosen = required + draw(
        st.lists(st.sampled_from(optional), unique=True, max_size=3) if optional else st.just([])
    )
    return {name: draw(_for_argument(function, parameters[name]), label=name) for name in chosen}


def _values(schedule: Schedule) -> list[float]:
    if schedule.uses_metric:
        for step, metric in enumerate(METRICS):
            schedule.report(metric, step)
    return [schedule(step) for step in STEPS]


def _drive_scheduler(schedule: Schedule) -> list[float]:
    parameter = torch.ones(2, requires_grad=True)
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    scheduler = schedules.ScheduledLR(optimizer, schedule)
    rates = []
    for metric in METRICS[:3]:
        parameter.grad = torch.ones(2)
        optimizer.step()
        scheduler.step(metric if schedule.uses_metric else None)
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def _grows_without_bound(schedule: Schedule) -> bool:
    """An exponential with factor > 1 is meant to grow: past float range its honest value is +-inf."""
    return isinstance(schedule, schedules.Exponential) and schedule.factor > 1


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
@given(data=st.data())
def test_schedule_arguments_are_refused_clearly_or_give_finite_values(name, data):
    function = CONSTRUCTORS[name]
    arguments = data.draw(_call(function), label="arguments")
    try:
        schedule = function(**arguments)
    except (TypeError, ValueError) as error:
        assert gen.names_an_argument(str(error), arguments), (
            f"{type(error).__name__} names no argument: {error}"
        )
        return
    assert isinstance(schedule, Schedule)
    values = _values(schedule)
    assert all(isinstance(v, float) for v in values), values
    if gen.is_moderate(list(arguments.values())) and not _grows_without_bound(schedule):
        assert all(math.isfinite(v) for v in values), values
        rates = _drive_scheduler(schedule)
        assert all(math.isfinite(rate) for rate in rates), rates


def _scheduler_arguments(cls) -> st.SearchStrategy:
    parameters = inspect.signature(cls).parameters
    strategies = {
        "relative": st.one_of(gen.flags(), st.sampled_from((("lr",), ["momentum"], "lr", ("betas[0]",), 1))),
        "last_epoch": gen.integers(),
        "schedule": _schedule_values(),
        "schedules": st.one_of(
            st.dictionaries(
                st.sampled_from(("lr", "momentum", "betas[0]", "lr[0]", "nope", "1x", "")),
                _schedule_values(),
                max_size=2,
            ),
            st.sampled_from((None, Constant(), [("lr", Constant())])),
        ),
    }
    missing = set(parameters) - {"optimizer"} - set(strategies)
    assert not missing, f"no strategy for {cls.__name__} arguments {missing}"
    return st.fixed_dictionaries(
        {
            name: strategies[name]
            for name, p in parameters.items()
            if p.default is inspect.Parameter.empty and name != "optimizer"
        },
        optional={
            name: strategies[name]
            for name, p in parameters.items()
            if p.default is not inspect.Parameter.empty
        },
    )


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
@given(data=st.data())
def test_scheduler_arguments_are_refused_clearly_or_step_finitely(name, data):
    cls = getattr(schedules, name)
    arguments = data.draw(_scheduler_arguments(cls), label="arguments")
    parameter = torch.ones(2, requires_grad=True)
    optimizer = torch.optim.SGD([parameter], lr=0.1, momentum=0.9)
    try:
        scheduler = cls(optimizer, **arguments)
    except (TypeError, ValueError) as error:
        assert gen.names_an_argument(str(error), arguments), (
            f"{type(error).__name__} names no argument: {error}"
        )
        return
    for _ in range(3):
        parameter.grad = torch.ones(2)
        optimizer.step()
        scheduler.step()
    assert torch.isfinite(parameter).all()
    assert all(math.isfinite(value) for values in scheduler.get_last_values().values() for value in values)
