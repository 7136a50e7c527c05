"""The declaration layer: state that differs by tensor, per-tensor reductions, group state, validation.

Each test declares a small algorithm the way an algorithm file does (a chain of transforms) and checks
the engine against a float64 loop written here from the formula, one tensor at a time.
"""

from __future__ import annotations

import inspect

import pytest
import torch

import descentlab.optim as dl
from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._transform import (
    Direction,
    GroupState,
    Hyperparameter,
    State,
    Update,
    arguments,
    transform,
)
from descentlab.optim._validation import UNIT_INTERVAL

DECAY = 0.9


def _matrix(group, param):
    return param.dim() == 2


def _row(group, param):
    return torch.zeros(param.shape[0], dtype=param.dtype)


def _column(group, param):
    return torch.zeros(param.shape[1], dtype=param.dtype)


@transform(
    hyperparameters=(Hyperparameter("decay", DECAY, UNIT_INTERVAL),),
    state=(
        State("row_sq", _row, when=_matrix),
        State("col_sq", _column, when=_matrix),
        State("exp_avg_sq", when=lambda group, param: not _matrix(group, param)),
    ),
    elementwise=False,
)
def scale_by_factored_rms(update: Update, direction: Direction) -> Direction:
    """Adafactor-like: a matrix keeps row and column means of g^2, anything else a full EMA of g^2."""
    decay, out = update.number("decay"), []
    factored = "row_sq" in update.state  # one bucket holds one state layout
    for index, grad in enumerate(direction.numerator):
        if factored:
            row, col = update.state["row_sq"][index], update.state["col_sq"][index]
            row.lerp_((grad * grad).mean(dim=1), 1 - decay)
            col.lerp_((grad * grad).mean(dim=0), 1 - decay)
            estimate = torch.outer(row, col) / row.mean()
        else:
            full = update.state["exp_avg_sq"][index]
            full.lerp_(grad * grad, 1 - decay)
            estimate = full
        out.append(grad / (estimate.sqrt() + 1e-30))
    return Direction(out)


class FactoredRMS(RuleOptimizer):
    """Test algorithm: state shaped (and keyed) differently for matrices and vectors."""

    chain = (scale_by_factored_rms,)
    signature = arguments("lr decay * foreach", lr=0.1)


def _reference_factored(initial, grads_per_step, lr):
    """float64 loop over tensors: row/column EMAs for matrices, a full EMA for vectors."""
    out = []
    for index, start in enumerate(initial):
        param = start.clone()
        row = col = full = None
        for grads in grads_per_step:
            grad = grads[index]
            if param.dim() == 2:
                row = (grad * grad).mean(dim=1) * (1 - DECAY) + (0 if row is None else DECAY * row)
                col = (grad * grad).mean(dim=0) * (1 - DECAY) + (0 if col is None else DECAY * col)
                estimate = torch.outer(row, col) / row.mean()
            else:
                full = grad * grad * (1 - DECAY) + (0 if full is None else DECAY * full)
                estimate = full
            param = param - lr * grad / (estimate.sqrt() + 1e-30)
        out.append(param)
    return out


def test_state_that_differs_by_tensor_stays_aligned_with_its_parameter():
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (5,), (2, 6), (7,), (4, 4)]  # interleaved: a bucket per layout
    initial = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes]
    grads_per_step = [
        [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in shapes] for _ in range(4)
    ]
    params = [tensor.clone().requires_grad_() for tensor in initial]
    optimizer = FactoredRMS(params, lr=0.1)
    for grads in grads_per_step:
        for param, grad in zip(params, grads):
            param.grad = grad.clone()
        optimizer.step()
    assert set(optimizer.state[params[0]]) == {"row_sq", "col_sq"}
    assert set(optimizer.state[params[1]]) == {"exp_avg_sq"}
    for ours, reference in zip(params, _reference_factored(initial, grads_per_step, 0.1)):
        torch.testing.assert_close(ours.detach(), reference, rtol=1e-12, atol=1e-14)


@transform(elementwise=False)
def normalize_by_norm(update: Update, direction: Direction) -> Direction:
    """``g / ||g||`` per tensor: a per-tensor reduction, so not elementwise."""
    return Direction([grad / grad.norm() for grad in direction.numerator])


@transform(state=(State("exp_avg"),))
def trace_plain(update: Update, direction: Direction) -> Direction:
    torch._foreach_lerp_(update.state["exp_avg"], direction.numerator, 0.5)
    return Direction(update.state["exp_avg"])


class NormalizedMomentum(RuleOptimizer):
    """Test algorithm: an elementwise momentum, then a per-tensor norm normalisation (Muon-like)."""

    chain = (trace_plain, normalize_by_norm)
    signature = arguments("lr * foreach", lr=0.1)


def test_a_per_tensor_reduction_is_never_cache_blocked():
    assert not NormalizedMomentum.elementwise and dl.Adam.elementwise
    generator = torch.Generator().manual_seed(1)
    initial = [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in [(40,), (6, 7)]]
    grads = [torch.randn_like(tensor) for tensor in initial]
    results = []
    for block_numel in (0, 5):  # 5 elements: an elementwise chain would be cut into slices
        params = [tensor.clone().requires_grad_() for tensor in initial]
        optimizer = NormalizedMomentum(params)
        optimizer.block_numel = block_numel
        for _ in range(3):
            for param, grad in zip(params, grads):
                param.grad = grad.clone()
            optimizer.step()
        results.append([param.detach() for param in params])
    for whole, blocked, start, grad in zip(*results, initial, grads):
        assert torch.equal(whole, blocked)
        average, expected = torch.zeros_like(grad), start.clone()
        for _ in range(3):
            average = 0.5 * average + 0.5 * grad
            expected = expected - 0.1 * average / average.norm()
        torch.testing.assert_close(whole, expected, rtol=1e-12, atol=1e-14)


@transform(group_state=(GroupState("distance", lambda group: 0.0),), elementwise=False)
def scale_by_distance(update: Update, direction: Direction) -> Direction:
    """Prodigy-like group state: d <- max(d, ||g||_inf over the group); the step is (1 + d) g."""
    largest = max(float(grad.abs().max()) for grad in direction.numerator)
    update.group["distance"] = max(update.group["distance"], largest)
    return Direction(direction.numerator, scale=1.0 + update.group["distance"])


class DistanceScaled(RuleOptimizer):
    """Test algorithm with group-level state."""

    chain = (scale_by_distance,)
    signature = arguments("lr * foreach", lr=0.01)


def _drive(optimizer, params, grads):
    for grad_set in grads:
        for param, grad in zip(params, grad_set):
            param.grad = grad.clone()
        optimizer.step()


def test_group_state_round_trips_through_torchs_state_dict():
    generator = torch.Generator().manual_seed(2)
    initial = [torch.randn(4, generator=generator, dtype=torch.float64) for _ in range(2)]
    grads = [[torch.randn(4, generator=generator, dtype=torch.float64) for _ in range(2)] for _ in range(6)]
    params = [tensor.clone().requires_grad_() for tensor in initial]
    uninterrupted = DistanceScaled(params)
    _drive(uninterrupted, params, grads)

    resumed_params = [tensor.clone().requires_grad_() for tensor in initial]
    first = DistanceScaled(resumed_params)
    _drive(first, resumed_params, grads[:3])
    saved = torch.optim.Optimizer.state_dict(first)  # torch's own state_dict, not an override
    assert saved["param_groups"][0]["distance"] == first.param_groups[0]["distance"] > 0
    second = DistanceScaled(resumed_params)
    torch.optim.Optimizer.load_state_dict(second, saved)
    _drive(second, resumed_params, grads[3:])
    assert second.param_groups[0]["distance"] == uninterrupted.param_groups[0]["distance"]
    for ours, reference in zip(resumed_params, params):
        assert torch.equal(ours, reference)
    # A group loaded without it (a state_dict from before) starts it afresh at the next step.
    del saved["param_groups"][0]["distance"]
    third = DistanceScaled([tensor.clone().requires_grad_() for tensor in initial])
    third.load_state_dict(saved)
    assert "distance" not in third.param_groups[0]


@transform(hyperparameters=(Hyperparameter("decay", 0.5, UNIT_INTERVAL),))
def scale_by_decay(update: Update, direction: Direction) -> Direction:
    return Direction(direction.numerator, scale=update.number("decay"))


class Decayed(RuleOptimizer):
    """Test algorithm with one declared hyperparameter and its check."""

    chain = (scale_by_decay,)
    signature = arguments("lr decay * foreach", lr=0.1)


def test_declared_checks_run_for_constructor_groups_added_groups_and_loaded_groups():
    param = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\), got 1.5"):
        Decayed([param], decay=1.5)
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\), got -1"):
        Decayed([{"params": [param], "decay": -1}])
    optimizer = Decayed([param])
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\), got 2"):
        optimizer.add_param_group({"params": [torch.zeros(1, requires_grad=True)], "decay": 2})
    assert len(optimizer.param_groups) == 1
    saved = optimizer.state_dict()
    saved["param_groups"][0]["decay"] = float("nan")
    with pytest.raises(ValueError, match="decay must be finite, got nan"):
        optimizer.load_state_dict(saved)
    with pytest.raises(TypeError, match=r"Decayed\(\): .*unexpected keyword argument 'decy'"):
        Decayed([param], decy=0.1)


TORCH_CLASSES = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "RAdam"]


@pytest.mark.parametrize("name", TORCH_CLASSES)
def test_generated_constructor_keeps_torchs_positional_order(name):
    def positional(cls):
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]

    assert positional(getattr(dl, name)) == positional(getattr(torch.optim, name))
    ours = getattr(dl, name)([torch.zeros(2, requires_grad=True)], 0.5)  # lr given positionally
    assert ours.param_groups[0]["lr"] == 0.5


def test_per_tensor_step_sizes_round_once_as_torchs_add_with_alpha():
    """A direction with one scale per tensor (Muon's shape factors) moves each parameter as torch's
    ``param.add_(x, alpha=-lr * scale)`` does, one rounding (a product then a sum rounds twice)."""
    from descentlab.optim._engine import apply_update

    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(shape, generator=generator) for shape in [(300,), (40, 7), (300,)]]
    numerators = [torch.randn(p.shape, generator=generator) for p in params]
    scales, lr = [1.7320508075688772, 1.0, 1.7320508075688772], 0.0123456
    expected = [p.clone().add_(n, alpha=-lr * s) for p, n, s in zip(params, numerators, scales)]
    apply_update(params, Direction(numerators, scale=scales), lr)
    for ours, torchs in zip(params, expected):
        assert torch.equal(ours, torchs)
