"""Warm-up, sequences and warmup-stable-decay against their closed forms."""

import math

import pytest

from descentlab.schedules import Constant, Cosine, Exponential, Plateau, Sequence, Warmup, linear, wsd


def hf_cosine_with_warmup(t, warmup, total):
    """Hugging Face's get_cosine_schedule_with_warmup multiplier, written from its documented formula."""
    if t < warmup:
        return t / warmup
    progress = (t - warmup) / (total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def test_linear_warmup_then_cosine_matches_hugging_face():
    warmup, total = 50, 400
    schedule = Warmup("linear", warmup, then=Cosine(total - warmup))
    for t in range(total + 1):
        assert schedule(t) == pytest.approx(hf_cosine_with_warmup(t, warmup, total), abs=1e-14)


@pytest.mark.parametrize("start_factor", [None, 0.25])
def test_linear_warmup_closed_form(start_factor):
    schedule = Warmup("linear", 20, then=Constant(0.5), start_factor=start_factor)
    s = 0.0 if start_factor is None else start_factor
    for t in range(40):
        expected = 0.5 * (s + (1 - s) * t / 20) if t < 20 else 0.5
        assert schedule(t) == pytest.approx(expected, abs=1e-15)


def test_exponential_warmup_is_geometric():
    schedule = Warmup("exponential", 10, then=Exponential(100, initial=2.0), start_factor=0.001)
    for t in range(10):
        assert schedule(t) == pytest.approx(2.0 * 0.001 ** (1 - t / 10), rel=1e-13)
    ratios = {round(schedule(t + 1) / schedule(t), 12) for t in range(9)}
    assert ratios == {round(1000 ** (1 / 10), 12)}
    for t in range(10, 300, 7):
        assert schedule(t) == pytest.approx(2.0 * 0.1 ** ((t - 10) / 100), rel=1e-13)


def test_constant_warmup_then_jump():
    schedule = Warmup("constant", 5, then=linear(10, initial=1.0, final=0.0))
    assert [schedule(t) for t in range(8)] == pytest.approx([0.1] * 5 + [1.0, 0.9, 0.8])


def test_zero_warmup_steps_is_the_wrapped_schedule():
    cosine = Cosine(30)
    assert [Warmup("linear", 0, then=cosine)(t) for t in range(40)] == [cosine(t) for t in range(40)]


def test_warmup_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind must be one of"):
        Warmup("cosine", 10)
    with pytest.raises(ValueError, match="steps must be an integer >= 0, got -3"):
        Warmup("linear", -3)
    with pytest.raises(ValueError, match="start_factor must be > 0 for exponential"):
        Warmup("exponential", 10, start_factor=0.0)
    with pytest.raises(TypeError, match="then must be a Schedule"):
        Warmup("linear", 10, then=0.5)


def test_sequence_runs_segments_on_local_steps():
    schedule = Sequence([(10, Constant(1.0)), (20, linear(20, 1.0, 0.5)), (None, Cosine(40, 0.5, 0.0))])
    for t in range(120):
        if t < 10:
            expected = 1.0
        elif t < 30:
            expected = 1.0 - 0.5 * (t - 10) / 20
        else:
            expected = 0.25 * (1 + math.cos(math.pi * min(t - 30, 40) / 40))
        assert schedule(t) == pytest.approx(expected, abs=1e-15)


def test_sequence_with_finite_last_segment_keeps_evaluating_it():
    schedule = Sequence([(5, Constant(2.0)), (5, linear(5, 1.0, 0.0))])
    assert schedule(100) == 0.0
    assert schedule(7) == pytest.approx(0.6)


def test_sequence_rejects_bad_segments():
    with pytest.raises(ValueError, match="at least one"):
        Sequence([])
    with pytest.raises(ValueError, match=r"segments\[0\]\[0\] \(steps\) must be an integer >= 1, got None"):
        Sequence([(None, Constant()), (5, Constant())])
    with pytest.raises(TypeError, match=r"segments\[1\]\[1\] must be a Schedule"):
        Sequence([(5, Constant()), (5, 0.1)])


@pytest.mark.parametrize("decay", ["1-sqrt", "linear", "cosine"])
def test_wsd_closed_form(decay):
    total, warmup, cooldown, peak, final = 200, 20, 50, 3.0, 0.3
    schedule = wsd(total, warmup, cooldown, peak, final, decay=decay)
    for t in range(total + 20):
        if t < warmup:
            expected = peak * t / warmup
        elif t < total - cooldown:
            expected = peak
        else:
            x = min(t - (total - cooldown), cooldown) / cooldown
            shape = {"1-sqrt": 1 - math.sqrt(x), "linear": 1 - x, "cosine": 0.5 * (1 + math.cos(math.pi * x))}
            expected = final + (peak - final) * shape[decay]
        assert schedule(t) == pytest.approx(expected, rel=1e-13, abs=1e-15), t
    assert schedule(total) == pytest.approx(final)


def test_wsd_without_stable_phase_and_errors():
    schedule = wsd(30, 10, 20, decay="linear")
    assert [schedule(t) for t in (0, 5, 10, 20, 30)] == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0])
    with pytest.raises(
        ValueError, match="warmup_steps \\+ decay_steps must be <= total_steps, got 10 \\+ 30 > 30"
    ):
        wsd(30, 10, 30)
    with pytest.raises(ValueError, match="decay must be one of"):
        wsd(30, 10, 10, decay="exp")


def test_metric_reaches_plateau_only_after_the_warmup_and_earlier_segments():
    plateau = Plateau(initial=1.0, patience=0, factor=0.5)
    schedule = Warmup("linear", 4, then=Sequence([(3, Constant(1.0)), (None, plateau)]))
    assert schedule.uses_metric and not Warmup("linear", 4).uses_metric
    for step in range(7):  # warm-up and the constant segment: metrics are not passed on
        schedule.report(1.0, step)
    assert plateau.state.best is None
    schedule.report(1.0, 7)
    schedule.report(2.0, 8)  # no improvement with patience 0: halve
    assert schedule(9) == 0.5
    state = schedule.state_dict()
    assert state == {
        "0": {},
        "1": {"value": 0.5, "best": 1.0, "bad_reports": 0, "cooldown_left": 0, "reductions": 1},
    }
    fresh = Warmup(
        "linear", 4, then=Sequence([(3, Constant(1.0)), (None, Plateau(initial=1.0, patience=0, factor=0.5))])
    )
    fresh.load_state_dict(state)
    assert fresh(9) == 0.5
