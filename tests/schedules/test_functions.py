"""Closed-form checks of the pure schedules, written from the formulas, plus agreement with torch."""

import math

import pytest
import torch

from descentlab.schedules import (
    Constant,
    Cosine,
    CosineRestarts,
    Exponential,
    OneMinusSqrt,
    PiecewiseConstant,
    Polynomial,
    Power,
    linear,
)

STEPS = [*range(0, 60), 99, 100, 101, 250, 999, 1000, 1001, 12_345]


def torch_lrs(make_scheduler, steps, lr=1.0):
    """Learning rates of a torch scheduler at steps 0 .. steps-1 (float64-exact inputs)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(("s", "c", "initial"), [(10.0, 1.0, 1.0), (250.0, 0.5, 0.3), (7.0, 2.5, 2.0)])
def test_power_matches_closed_form(s, c, initial):
    schedule = Power(s, exponent=c, initial=initial)
    for t in STEPS:
        assert schedule(t) == pytest.approx(initial / (1 + t / s) ** c, rel=1e-14)


def test_power_with_exponent_one_halves_then_thirds():
    schedule = Power(100, exponent=1.0, initial=0.9)
    assert schedule(100) == pytest.approx(0.45)
    assert schedule(200) == pytest.approx(0.3)


@pytest.mark.parametrize(("s", "factor", "initial"), [(20.0, 0.1, 1.0), (3.0, 0.5, 0.01)])
def test_exponential_matches_closed_form(s, factor, initial):
    schedule = Exponential(s, factor=factor, initial=initial)
    for t in STEPS:
        assert schedule(t) == pytest.approx(initial * math.exp(math.log(factor) * t / s), rel=1e-12)
    assert Exponential(20)(40) == pytest.approx(0.01, rel=1e-14)


def test_exponential_agrees_with_torch_exponential_lr():
    s = 8.0
    expected = torch_lrs(lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.1 ** (1 / s)), 40)
    ours = [Exponential(s)(t) for t in range(40)]
    assert ours == pytest.approx(expected, rel=1e-12)


def test_piecewise_constant_picks_the_interval():
    schedule = PiecewiseConstant([5, 15], [1.0, 0.1, 0.01])
    expected = {0: 1.0, 4: 1.0, 5: 0.1, 14: 0.1, 15: 0.01, 10_000: 0.01}
    for t, value in expected.items():
        assert schedule(t) == value
    assert isinstance(schedule.boundaries, tuple)
    hash(schedule)


def test_piecewise_constant_agrees_with_torch_multistep():
    boundaries = [3, 7, 20]
    values = [1.0, 0.5, 0.25, 0.125]
    expected = torch_lrs(lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, boundaries, gamma=0.5), 30)
    assert [PiecewiseConstant(boundaries, values)(t) for t in range(30)] == expected


@pytest.mark.parametrize(("initial", "final", "total"), [(1.0, 0.0, 100), (0.5, 0.05, 37)])
def test_cosine_matches_closed_form_and_holds_final(initial, final, total):
    schedule = Cosine(total, initial=initial, final=final)
    for t in STEPS:
        progress = min(t, total) / total
        expected = final + 0.5 * (initial - final) * (1 + math.cos(math.pi * progress))
        assert schedule(t) == pytest.approx(expected, rel=1e-13, abs=1e-15)
    assert schedule(0) == initial
    assert schedule(total) == pytest.approx(final, abs=1e-15)
    assert Cosine(100, initial=initial, final=final)(50) == pytest.approx((initial + final) / 2)


def test_cosine_agrees_with_torch_cosine_annealing_lr():
    total = 50
    expected = torch_lrs(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, total, eta_min=0.1), total + 1
    )
    assert [Cosine(total, final=0.1)(t) for t in range(total + 1)] == pytest.approx(expected, rel=1e-9)


def sgdr_reference(t, period, mult, initial, final, decay):
    """SGDR from the paper: walk the cycles one by one."""
    start, length, cycle = 0, period, 0
    while t >= start + length:
        start += length
        length *= mult
        cycle += 1
    peak = initial * decay**cycle
    return final + 0.5 * (peak - final) * (1 + math.cos(math.pi * (t - start) / length))


@pytest.mark.parametrize(("period", "mult", "decay"), [(10, 1, 1.0), (5, 2, 1.0), (4, 3, 0.5)])
def test_cosine_restarts_matches_closed_form(period, mult, decay):
    schedule = CosineRestarts(period, initial=1.0, final=0.01, period_factor=mult, peak_decay=decay)
    for t in [*range(200), 1000, 4095, 4096]:
        assert schedule(t) == pytest.approx(sgdr_reference(t, period, mult, 1.0, 0.01, decay), rel=1e-13)
    assert schedule(period) == pytest.approx(0.01 + (1.0 * decay - 0.01))  # a restart is back at the peak


@pytest.mark.parametrize(("period", "mult"), [(10, 1), (5, 2)])
def test_cosine_restarts_agrees_with_torch(period, mult):
    expected = torch_lrs(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            opt, period, T_mult=mult, eta_min=0.01
        ),
        150,
    )
    ours = [CosineRestarts(period, final=0.01, period_factor=mult)(t) for t in range(150)]
    assert ours == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("power", "final"), [(1.0, 0.0), (2.0, 0.1), (0.5, 0.0)])
def test_polynomial_matches_closed_form(power, final):
    total = 80
    schedule = Polynomial(total, initial=2.0, final=final, power=power)
    for t in STEPS:
        expected = final + (2.0 - final) * max(0.0, 1 - t / total) ** power
        assert schedule(t) == pytest.approx(expected, rel=1e-13, abs=1e-15)


def test_polynomial_agrees_with_torch_polynomial_lr():
    expected = torch_lrs(
        lambda opt: torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=20, power=2.0), 30
    )
    assert [Polynomial(20, power=2.0)(t) for t in range(30)] == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_linear_interpolates_both_ways():
    down = linear(10, initial=1.0, final=0.2)
    up = linear(4, initial=0.0, final=1.0)
    assert [down(t) for t in (0, 5, 10, 50)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    assert [up(t) for t in range(6)] == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1])


def test_one_minus_sqrt_matches_closed_form():
    schedule = OneMinusSqrt(64, initial=1.0, final=0.1)
    for t in [0, 1, 16, 36, 63, 64, 100]:
        assert schedule(t) == pytest.approx(0.1 + 0.9 * (1 - math.sqrt(min(t, 64) / 64)), rel=1e-14)
    assert schedule(16) == pytest.approx(0.1 + 0.9 * 0.5)


def test_constant_is_constant():
    assert {Constant(0.3)(t) for t in STEPS} == {0.3}


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Power(0), "scale_steps must be a finite number > 0, got 0"),
        (lambda: Power(10, exponent=-1), "exponent must be >= 0"),
        (lambda: Exponential(10, factor=0), "factor must be a finite number > 0"),
        (lambda: PiecewiseConstant([5], [1.0]), "one more entry than boundaries"),
        (lambda: PiecewiseConstant([5, 5], [1.0, 2.0, 3.0]), "strictly increasing"),
        (lambda: Cosine(0), "total_steps must be an integer >= 1, got 0"),
        (lambda: Cosine(10.5), "total_steps must be an integer >= 1, got 10.5"),
        (lambda: Cosine(10, initial=float("nan")), "initial must be a finite number"),
        (lambda: CosineRestarts(10, period_factor=0), "period_factor must be an integer >= 1"),
        (lambda: Polynomial(10, power=0), "power must be a finite number > 0"),
    ],
)
def test_bad_arguments_name_the_value(build, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


@pytest.mark.parametrize("step", [-1, 1.5, True])
def test_bad_steps_are_rejected(step):
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        Cosine(10)(step)
