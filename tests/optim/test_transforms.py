"""The declaration layer: state that differs by tensor, per-tensor reductions, group state, validation.

Each test declares a small algorithm the way an algorithm file does (a chain of transforms) and checks
the engine against a float64 loop written here from the formula, one tensor at a time.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import descentlab.optim as dl
from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._transform import (
    Direction,
    GroupReduction,
    GroupState,
    Hyperparameter,
    State,
    Update,
    arguments,
    transform,
)
from descentlab.optim._validation import UNIT_INTERVAL
from reference.prodigy import prodigy_step

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


@transform(
    group_state=(
        GroupState("steps_taken", lambda group: 0, lambda group: group["steps_taken"] + 1),
        GroupState("twice_steps", lambda group: 0, lambda group: 2 * group["steps_taken"]),
    )
)
def scale_by_steps_taken(update: Update, direction: Direction) -> Direction:
    """A group-level count advanced once per step (Schedule-Free's k): the step is steps_taken * g."""
    return Direction(direction.numerator, scale=float(update.group["steps_taken"]))


class StepCounted(RuleOptimizer):
    """Test algorithm whose group state advances once per step."""

    chain = (scale_by_steps_taken,)
    signature = arguments("lr * foreach", lr=0.1)


@pytest.mark.parametrize("foreach", [True, False])
def test_group_state_advances_once_per_step_over_all_buckets(foreach):
    # Two dtypes and one parameter without a gradient: several buckets (one per parameter with
    # foreach=False), and still one advance per step, in declaration order.
    params = [torch.zeros(3, dtype=torch.float64), torch.zeros(2, dtype=torch.float32), torch.zeros(2)]
    params = [param.requires_grad_() for param in params]
    optimizer = StepCounted(params, foreach=foreach)
    for step in range(1, 5):
        for param in params[:2]:
            param.grad = torch.ones_like(param)
        optimizer.step()
        assert optimizer.param_groups[0]["steps_taken"] == step
        assert optimizer.param_groups[0]["twice_steps"] == 2 * step
    expected = -0.1 * (1 + 2 + 3 + 4)
    assert torch.allclose(params[0], torch.full((3,), expected, dtype=torch.float64))
    assert torch.allclose(params[1], torch.full((2,), expected))
    assert torch.equal(params[2], torch.zeros(2))


def _sum_of_squares(update: Update) -> tuple[torch.Tensor]:
    return (torch.stack([(grad * grad).sum() for grad in update.grads]).sum(),)


def _store_norm(group, totals) -> None:
    group["grad_norm"] = float(totals[0].sqrt())


@transform(
    group_state=(GroupState("grad_norm", lambda group: 0.0),),
    elementwise=False,
    reduction=GroupReduction(_sum_of_squares, _store_norm),
)
def normalize_by_group_norm(update: Update, direction: Direction) -> Direction:
    """``g / ||g||`` with the norm over the whole param group (every bucket), from the reduction."""
    return Direction(direction.numerator, scale=1.0 / update.group["grad_norm"])


class GroupNormalized(RuleOptimizer):
    """Test algorithm: a step of length lr over the whole group, whatever its buckets."""

    chain = (normalize_by_group_norm,)
    signature = arguments("lr * foreach maximize", lr=0.1)


_SCALES = [np.linspace(0.5, 2.0, 6), np.linspace(1.0, 3.0, 4)]
_CENTRES = [np.cos(np.arange(6.0)), np.sin(np.arange(4.0))]
_STARTS = [np.linspace(-1.0, 1.0, 6), np.linspace(2.0, -1.0, 4)]


def _mixed_dtype_params():
    """One float32 and one float64 tensor: one param group, two buckets."""
    return [
        torch.tensor(_STARTS[0], dtype=torch.float32, requires_grad=True),
        torch.tensor(_STARTS[1], dtype=torch.float64, requires_grad=True),
    ]


def _step_quadratic(optimizer, params, steps):
    for _ in range(steps):
        for param, scale, centre in zip(params, _SCALES, _CENTRES):
            scale, centre = (torch.tensor(value, dtype=param.dtype) for value in (scale, centre))
            param.grad = scale * (param.detach() - centre)
        optimizer.step()


@pytest.mark.parametrize("foreach", [True, False])
def test_a_group_reduction_sums_over_every_bucket_before_any_update(foreach):
    params = _mixed_dtype_params()
    optimizer = GroupNormalized(params, foreach=foreach)
    _step_quadratic(optimizer, params, 20)
    x = np.concatenate(_STARTS)
    for _ in range(20):  # float64 loop: x <- x - lr g / ||g||, g and its norm over both tensors
        gradient = np.concatenate(_SCALES) * (x - np.concatenate(_CENTRES))
        x = x - 0.1 * gradient / np.linalg.norm(gradient)
    ours = np.concatenate([param.detach().double().numpy() for param in params])
    np.testing.assert_allclose(ours, x, rtol=1e-5, atol=1e-6)  # float32 rounding of the first tensor


class _FlatQuadratic:
    """The oracle tests/reference/prodigy.py reads: the group's tensors as one flat float64 vector."""

    def __init__(self, tensors=(0, 1)):
        self.tensors = list(tensors)
        self.start = [_STARTS[i] for i in self.tensors]
        self.indices = list(range(len(self.tensors)))

    def gradient(self, x):
        scales = np.concatenate([_SCALES[i] for i in self.tensors])
        return scales * (x - np.concatenate([_CENTRES[i] for i in self.tensors]))


def _reference_d(tensors, steps, hyper):
    oracle, state = _FlatQuadratic(tensors), {}
    x = np.concatenate(oracle.start)
    for t in range(1, steps + 1):
        x = prodigy_step(x, oracle, state, hyper, t)
    return state["d"]


def test_prodigy_distance_estimate_of_a_group_mixing_float32_and_float64():
    # d0 = 1e-3: with the default 1e-6 the first float32 steps are a few ulps, so x0 - x carries
    # rounding errors of several percent and the float64 reference differs by 1e-3 after 100 steps.
    params = _mixed_dtype_params()
    optimizer = dl.Prodigy(params, d0=1e-3)
    _step_quadratic(optimizer, params, 100)
    hyper = {
        "lr": 1.0, "betas": (0.9, 0.999), "beta3": None, "eps": 1e-8, "weight_decay": 0.0,
        "decoupled_weight_decay": True, "use_bias_correction": False, "safeguard_warmup": False,
        "d0": 1e-3, "d_coef": 1.0, "growth_rate": None, "slice_p": 1, "variant": "authors",
    }  # fmt: skip
    expected = _reference_d([0, 1], 100, hyper)
    assert optimizer.param_groups[0]["d"] == pytest.approx(expected, rel=1e-5)  # 1e-6 measured
    # Either bucket's sums alone give a d 2-3% away: a per-bucket reduction would fail the check above.
    for alone in ([0], [1]):
        assert abs(_reference_d(alone, 100, hyper) - expected) > 0.01 * expected


def test_a_group_reduction_with_an_evaluation_point_is_refused():
    with pytest.raises(TypeError, match="group reduction cannot be combined with an evaluation point"):

        class Both(RuleOptimizer):  # the class statement is what raises
            chain = (normalize_by_group_norm,)
            evaluation_point = dl.Nesterov.evaluation_point


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
