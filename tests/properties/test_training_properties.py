"""Every training helper, any arguments: a clear refusal, or a finite result.

Each public helper of :mod:`descentlab.training` that takes settings is called on a small model (its
objects fixed below) with its remaining arguments drawn from its signature (:mod:`strategies`). The call
must raise ``ValueError``/``TypeError`` naming a drawn argument, its value and what is allowed, or
return a result whose numbers (gradients, weights, penalties, learning rates, predictions) are finite.
"""

from __future__ import annotations

import inspect
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

import descentlab.training as training
from properties import strategies as gen

# Names documented in descentlab.training.init (the signature says only "str"), and module names.
ACTIVATIONS = ("relu", "tanh", "leaky_relu", "selu", "gelu", "sigmoid", nn.ReLU(), nn.LeakyReLU(0.2))
MODULE_NAMES = ("0", "2", "*", "0.weight", "2.*", "nope")
TEXT_ARGUMENTS = {
    "activation": ACTIVATIONS,
    "task": ("regression", "classification"),
    "map_location": ("cpu",),
}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2))


def _with_grads(model: nn.Module) -> nn.Module:
    model(torch.ones(5, 3)).pow(2).sum().backward()
    return model


def _grads_finite(fixed) -> bool:
    return _finite(*(p.grad for p in fixed["model"].parameters()))


def _finite(*tensors) -> bool:
    return all(torch.isfinite(t).all() for t in tensors)


@dataclass
class Helper:
    """A helper, the objects it is called on (not drawn), and what its result must satisfy."""

    function: Callable[..., Any]
    fixed: Callable[[], dict[str, Any]]
    check: Callable[[Any, dict[str, Any]], bool]


def _model_finite(result, fixed) -> bool:
    return _finite(*fixed["model"].parameters())


def _groups_finite(result, fixed) -> bool:
    optimizer = torch.optim.SGD(result, lr=0.1)  # the groups must also be valid optimizer input
    return all(
        math.isfinite(float(g["lr"])) and math.isfinite(float(g["weight_decay"]))
        for g in optimizer.param_groups
    )


CHECKPOINTS = tempfile.TemporaryDirectory(prefix="descentlab-properties-")  # removed at exit


def _checkpoint() -> dict[str, Any]:
    tmp = CHECKPOINTS.name
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    training.save_checkpoint(f"{tmp}/checkpoint.pt", model, optimizer)
    return {"path": f"{tmp}/checkpoint.pt", "model": model, "optimizer": optimizer}


HELPERS = {
    "clip_grad_norm": Helper(
        training.clip_grad_norm,
        lambda: (lambda model: {"model": model, "parameters": model.named_parameters()})(
            _with_grads(_model())
        ),
        # For norm_type -> 0 the p-"norm" of n >= 2 entries really is huge (inf): only the grads must stay
        # finite (scaled by max_norm / inf = 0), and no norm may be NaN.
        lambda result, fixed: not math.isnan(result.total_norm) and _grads_finite(fixed),
    ),
    "clip_grad_value": Helper(
        training.clip_grad_value,
        lambda: {"parameters": _with_grads(_model()).named_parameters()},
        lambda result, fixed: math.isfinite(result.total_norm),
    ),
    "MaxNormConstraint": Helper(
        training.MaxNormConstraint,
        lambda: {"model": _model()},
        lambda result, fixed: result.apply() or _model_finite(result, fixed),
    ),
    "apply_max_norm": Helper(training.apply_max_norm, lambda: {"model": _model()}, _model_finite),
    "l1_penalty": Helper(
        training.l1_penalty, lambda: {"parameters": _model().parameters()}, lambda r, f: _finite(r)
    ),
    "l2_penalty": Helper(
        training.l2_penalty, lambda: {"parameters": _model().parameters()}, lambda r, f: _finite(r)
    ),
    "ProximalL1": Helper(
        training.ProximalL1,
        lambda: (lambda model: {"model": model, "optimizer": torch.optim.SGD(model.parameters(), lr=0.1)})(
            _model()
        ),
        lambda result, fixed: result.apply() or _model_finite(result, fixed),
    ),
    "sparsity": Helper(training.sparsity, lambda: {"source": _model()}, lambda r, f: 0 <= r.fraction <= 1),
    "weight_decay_param_groups": Helper(
        training.weight_decay_param_groups, lambda: {"model": _model()}, _groups_finite
    ),
    "create_optimizer": Helper(
        training.create_optimizer,
        lambda: {"name_or_class": "adamw", "model_or_params": _model()},
        lambda result, fixed: _groups_finite(result.param_groups, fixed),
    ),
    "layer_indices": Helper(
        training.layer_indices, lambda: {"model": _model()}, lambda result, fixed: result[1] >= 1
    ),
    "discriminative_param_groups": Helper(
        training.discriminative_param_groups, lambda: {"model": _model()}, _groups_finite
    ),
    "freeze": Helper(training.freeze, lambda: {"model": _model()}, lambda r, f: isinstance(r, list)),
    "replace_output_layer": Helper(training.replace_output_layer, lambda: {"model": _model()}, _model_finite),
    "init_for_activation": Helper(training.init_for_activation, lambda: {"model": _model()}, _model_finite),
    "init_weight_": Helper(
        training.init_weight_, lambda: {"weight": torch.empty(4, 3)}, lambda r, f: _finite(r)
    ),
    "init_scheme_for": Helper(
        training.init_scheme_for, dict, lambda r, f: math.isfinite(r.scale) and r.scale > 0
    ),
    "mc_dropout_predict": Helper(
        training.mc_dropout_predict,
        lambda: {"model": _model(), "inputs": torch.ones(2, 3)},
        lambda r, f: _finite(r.mean, r.std),
    ),
    "load_checkpoint": Helper(training.load_checkpoint, _checkpoint, _model_finite),
    "GradualUnfreezer": Helper(
        training.GradualUnfreezer,
        lambda: (lambda model: {"model": model, "optimizer": torch.optim.SGD(model.parameters(), lr=0.1)})(
            _model()
        ),
        lambda result, fixed: (
            [result.on_epoch_start(epoch) for epoch in range(3)] and _model_finite(result, fixed)
        ),
    ),
}
# Arguments that are objects, not settings (ProximalL1's optimizer comes with its model).
NOT_DRAWN = {
    "path",
    "scheduler",
    "kwargs",
    "group_options",
    "generator",
    "generators",
    "parameters",
    "source",
    "model",
    "optimizer",
}


LOOP_COUNTS = ("num_samples", "samples_per_pass")
PATTERN_LISTS = ("patterns", "layers", "stages", "include", "exclude", "no_decay")


def _for_argument(function, parameter: inspect.Parameter) -> st.SearchStrategy:
    name, annotation = parameter.name, str(parameter.annotation)
    if name in TEXT_ARGUMENTS:
        return gen.names(TEXT_ARGUMENTS[name])
    if (
        name in ("patterns", "layers", "stages", "include", "exclude", "no_decay")
        or "Sequence[str" in annotation
    ):
        names = st.sampled_from(MODULE_NAMES)
        return st.one_of(st.lists(names, max_size=3), names, st.sampled_from((None, 3, [1.5])))
    if name in ("name",):
        return gen.names(("2", "0"))
    return gen.for_argument(function, parameter)


@st.composite
def _call(draw, helper: Helper, fixed_names):
    parameters = inspect.signature(helper.function).parameters
    drawable = {
        n: p
        for n, p in parameters.items()
        if n not in fixed_names and n not in NOT_DRAWN and p.kind != p.VAR_KEYWORD
    }
    required = [n for n, p in drawable.items() if p.default is inspect.Parameter.empty]
    optional = sorted(set(drawable) - set(required))
    chosen = required + (
        draw(st.lists(st.sampled_from(optional), unique=True, max_size=3)) if optional else []
    )
    return {name: draw(_for_argument(helper.function, drawable[name]), label=name) for name in chosen}


@pytest.mark.parametrize("name", sorted(HELPERS))
@given(data=st.data())
def test_training_helper_arguments_are_refused_clearly_or_give_finite_results(name, data):
    helper = HELPERS[name]
    fixed = helper.fixed()
    arguments = data.draw(_call(helper, set(fixed)), label="arguments")
    # A valid but huge sample count (num_samples = 2**63) is that many forward passes: not run here.
    counts = [arguments.get(key) for key in LOOP_COUNTS]
    assume(not any(type(count) is int and count > gen.MODERATE for count in counts))
    call_fixed = {k: v for k, v in fixed.items() if k in inspect.signature(helper.function).parameters}
    try:
        result = helper.function(**call_fixed, **arguments)
    except (TypeError, ValueError) as error:
        # match_parameters reports each entry of a list of patterns as "pattern 'x' matches no module"
        lists = [value for key, value in arguments.items() if key in PATTERN_LISTS]
        spelled = {**arguments, **({"pattern": lists[0]} if lists else {})}
        message = f"{type(error).__name__} names no argument: {error}"
        assert gen.names_an_argument(str(error), spelled), message
        return
    except training.NonFiniteGradientError:
        pytest.fail("the model's gradients are finite")
    assert helper.check(result, fixed)


def test_every_public_helper_with_settings_is_covered():
    """A new helper in descentlab.training must get a row above (or be listed as taking no settings)."""
    no_settings = {
        "unfreeze",
        "match_parameters",
        "add_parameters_to_optimizer",
        "attach_max_norm",
        "neuron_axis",
        "compute_fans",
        "save_checkpoint",
        "decay_parameter_names",
    }
    functions = {
        name
        for name in training.__all__
        if (callable(getattr(training, name)) and name[0].islower())
        or name in ("MaxNormConstraint", "ProximalL1", "GradualUnfreezer")
    }
    assert functions - set(HELPERS) - no_settings == set()
