"""Verdicts against hand-computed numbers and the report's real failure cases (ties, noise, round-off)."""

from __future__ import annotations

import itertools
import math

import pytest

from descentlab.lab.verdicts import (
    Verdict,
    decide,
    estimate,
    paired_difference,
    rank,
    resolution,
)

GABOR_FINAL = 0.6456960439682007


def seeds(*values: float) -> dict[int, float]:
    """``{0: values[0], 1: values[1], ...}``."""
    return dict(enumerate(values))


# --- estimate ---------------------------------------------------------------------------------------


def test_mean_and_sample_std_of_small_lists():
    # [1, 2, 3, 4]: mean 10/4; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n - 1 = 3.
    four = estimate([1.0, 2.0, 3.0, 4.0])
    assert (four.n, four.mean, four.identical) == (4, 2.5, False)
    assert four.std == pytest.approx(math.sqrt(5 / 3), rel=1e-15)
    # [2, 4, 4, 4, 5, 5, 7, 9]: mean 40/8 = 5; squared deviations sum to 9+1+1+1+0+0+4+16 = 32, over 7.
    eight = estimate([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert eight.mean == 5.0
    assert eight.std == pytest.approx(math.sqrt(32 / 7), rel=1e-15)
    assert eight.low < 5.0 < eight.high


def test_identical_values_collapse_the_interval_onto_the_value():
    result = estimate([GABOR_FINAL] * 3)
    assert result.identical
    assert (result.mean, result.std, result.low, result.high) == (GABOR_FINAL, 0.0, GABOR_FINAL, GABOR_FINAL)


def test_interval_of_zero_and_one():
    # A resample of [0, 1] has mean 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4: the 2.5 % and 97.5 %
    # quantiles fall inside the outer quarters, so the interval is exactly [0, 1].
    result = estimate([0.0, 1.0])
    assert result.mean == 0.5
    assert result.std == pytest.approx(math.sqrt(0.5), rel=1e-15)
    assert (result.low, result.high) == (0.0, 1.0)


def test_interval_matches_the_exact_bootstrap_distribution():
    # Every one of the 5**5 equally likely resamples of [0, 1, 2, 3, 4], enumerated: its 2.5 % and 97.5 %
    # quantiles are what 4000 random resamples estimate; their resolution is one step of 1/5.
    values = [0.0, 1.0, 2.0, 3.0, 4.0]
    means = sorted(sum(draw) / 5 for draw in itertools.product(values, repeat=5))
    exact_low, exact_high = means[int(0.025 * len(means))], means[int(0.975 * len(means))]
    result = estimate(values)
    assert result.low == pytest.approx(exact_low, abs=0.2)
    assert result.high == pytest.approx(exact_high, abs=0.2)
    assert 0.0 < result.low < 2.0 < result.high < 4.0


def test_one_value_has_no_interval_and_no_spread():
    result = estimate([3.25])
    assert (result.n, result.mean, result.std, result.low, result.high) == (1, 3.25, 0.0, 3.25, 3.25)


def test_non_finite_values_are_dropped_and_nothing_finite_gives_none():
    result = estimate([1.0, float("nan"), 3.0, float("inf"), None, -float("inf")])
    assert (result.n, result.mean) == (2, 2.0)
    assert estimate([float("nan"), None]) is None
    assert estimate([]) is None


def test_estimate_is_deterministic_and_seeded():
    values = [0.1, 0.4, 0.35, 0.8, 0.05, 0.6]
    assert estimate(values) == estimate(values)
    assert estimate(values, seed=1) != estimate(values, seed=2)


def test_resamples_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="resamples"):
        estimate([1.0, 2.0], resamples=0)


# --- paired_difference ------------------------------------------------------------------------------


def test_paired_difference_uses_common_seeds_only():
    # Seed 3 of b has no partner; on seeds 0-2 a - b is 0.5 every time.
    result = paired_difference(seeds(1.0, 2.0, 3.0), {0: 0.5, 1: 1.5, 2: 2.5, 3: 9.0})
    assert (result.n, result.mean, result.low, result.high) == (3, 0.5, 0.5, 0.5)


def test_paired_difference_of_crossing_runs_contains_zero():
    # a - b = -1, +1, -2, +2, 0: mean 0 by hand.
    result = paired_difference(seeds(1.0, 3.0, 0.0, 4.0, 2.0), seeds(2.0, 2.0, 2.0, 2.0, 2.0))
    assert result.n == 5
    assert result.mean == 0.0
    assert result.low < 0.0 < result.high


def test_paired_difference_without_a_common_seed_is_none():
    assert paired_difference({0: 1.0}, {1: 1.0}) is None
    assert paired_difference({0: float("nan")}, {0: 1.0}) is None


# --- resolution -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "epsilon"),
    [
        ("float64", 2.0**-52),
        ("float32", 2.0**-23),
        ("torch.float32", 2.0**-23),
        ("float16", 2.0**-10),
        ("bfloat16", 2.0**-7),
        ("torch.bfloat16", 2.0**-7),
    ],
)
def test_resolution_is_eight_epsilons_of_the_scale(dtype, epsilon):
    assert resolution(dtype, 6.45) == 8 * epsilon * 6.45
    assert resolution(dtype, -6.45) == 8 * epsilon * 6.45


def test_resolution_accepts_a_torch_dtype():
    torch = pytest.importorskip("torch")
    assert resolution(torch.float32, 1.0) == 8 * 2.0**-23


def test_unknown_dtype_is_named_in_the_error():
    with pytest.raises(ValueError, match="int8"):
        resolution("int8", 1.0)
    with pytest.raises(ValueError, match="scale"):
        resolution("float32", float("nan"))


# --- decide: the report's ties ----------------------------------------------------------------------


def test_exact_tie_on_three_seeds():
    verdict = decide(
        {"momentum": seeds(*[GABOR_FINAL] * 3), "gd": seeds(*[GABOR_FINAL] * 3)}, higher_is_better=False
    )
    assert verdict == Verdict(winner=None, tied=("gd", "momentum"), reason=verdict.reason, versus="momentum")
    assert "equal on all 3 common seeds" in verdict.reason
    assert verdict.sentence() == "tie: gd, momentum"
    assert verdict.sentence(str.upper) == "tie: GD, MOMENTUM"


def test_four_optimizers_at_exactly_zero_tie_four_ways():
    candidates = {label: seeds(0.0, 0.0, 0.0) for label in ("sgd", "adam", "rmsprop", "nesterov")}
    verdict = decide(candidates, higher_is_better=False)
    assert verdict.winner is None
    assert verdict.tied == ("adam", "nesterov", "rmsprop", "sgd")


def test_float32_round_off_is_no_win():
    # The bowl starts at 6.45; 8 float32 epsilons of that are 6.15e-6, far above 2.9e-11.
    tolerance = resolution("float32", 6.45)
    assert tolerance == pytest.approx(6.15e-6, rel=1e-3)
    candidates = {"adam": seeds(2.9e-11, 2.9e-11, 2.9e-11), "newton": seeds(3.5e-16, 3.5e-16, 3.5e-16)}
    verdict = decide(
        candidates,
        higher_is_better=False,
        tolerance=tolerance,
        deterministic=True,
        tolerance_name="float32 resolution",
    )
    assert (verdict.winner, verdict.tied) == (None, ("newton", "adam"))
    assert "within the float32 resolution" in verdict.reason
    # Without the tolerance the same exact runs do differ: the tolerance is what makes this a tie.
    assert decide(candidates, higher_is_better=False, deterministic=True).winner == "newton"


def test_digits_difference_within_noise_is_a_tie():
    # mean ± std by hand: (0.9798 + 0.9814 + 0.9830) / 3 = 0.9814, std sqrt(2 * 0.0016**2 / 2) = 0.0016;
    # (0.9833 + 0.9805 + 0.9777) / 3 = 0.9805, std 0.0028. Per-seed a - b: -0.0035, +0.0009, +0.0053.
    a, b = seeds(0.9798, 0.9814, 0.9830), seeds(0.9833, 0.9805, 0.9777)
    assert (estimate(a.values()).mean, estimate(a.values()).std) == pytest.approx((0.9814, 0.0016))
    assert (estimate(b.values()).mean, estimate(b.values()).std) == pytest.approx((0.9805, 0.0028))
    verdict = decide({"sgd": b, "adam": a}, higher_is_better=True)
    assert (verdict.winner, verdict.tied, verdict.versus) == (None, ("adam", "sgd"), "sgd")
    # Three pairs: every resample of the three differences that repeats the smallest one has mean -0.0035
    # and occurs with probability 1/27 > 2.5 %, so the interval starts there.
    assert verdict.reason == "difference within noise: 95 % interval [-0.0035, 0.0053] contains 0"


# --- decide: wins -----------------------------------------------------------------------------------

CLEAR_BEST = seeds(0.100, 0.101, 0.102, 0.103, 0.104)
CLEAR_WORSE = seeds(0.1105, 0.1107, 0.1122, 0.1126, 0.1141)  # best + 0.01 + (5, -3, 2, -4, 1) * 1e-4


def test_clear_win_when_lower_is_better():
    verdict = decide({"c": CLEAR_WORSE, "b": CLEAR_BEST}, higher_is_better=False)
    assert (verdict.winner, verdict.tied, verdict.versus) == ("b", ("b",), "c")
    assert verdict.sentence() == "b"
    # Mean difference by hand: 0.01 + (5 - 3 + 2 - 4 + 1) * 1e-4 / 5 = 0.01002.
    assert verdict.reason.startswith("beats the runner-up on all 5 common seeds: mean difference 0.01 [")


def test_clear_win_flips_when_higher_is_better():
    assert decide({"c": CLEAR_WORSE, "b": CLEAR_BEST}, higher_is_better=True).winner == "c"
    negated = {"b": {s: -v for s, v in CLEAR_BEST.items()}, "c": {s: -v for s, v in CLEAR_WORSE.items()}}
    assert decide(negated, higher_is_better=True).winner == "b"


def test_tolerance_larger_than_the_gap_turns_a_win_into_a_tie():
    verdict = decide({"c": CLEAR_WORSE, "b": CLEAR_BEST}, higher_is_better=False, tolerance=0.02)
    assert verdict.tied == ("b", "c")
    assert "within the tolerance 0.02" in verdict.reason


def test_means_within_tolerance_tie_even_when_common_seeds_differ():
    # Paired on seeds 0-1, c is worse by 1 every time, but its extra seed brings its mean to
    # (1 + 1 - 1.25) / 3 = 0.25, exactly the tolerance above b's 0.
    candidates = {"b": seeds(0.0, 0.0), "c": seeds(1.0, 1.0, -1.25)}
    verdict = decide(candidates, higher_is_better=False, tolerance=0.25)
    assert verdict.tied == ("b", "c")
    assert verdict.reason == "mean difference 0.25 within the tolerance 0.25"
    assert decide(candidates, higher_is_better=False, tolerance=0.2).winner == "b"


def test_one_stochastic_seed_is_not_evidence_but_one_exact_run_is():
    candidates = {"a": {0: 0.5}, "b": {0: 0.6}}
    stochastic = decide(candidates, higher_is_better=False)
    assert (stochastic.winner, stochastic.tied) == (None, ("a", "b"))
    assert stochastic.reason.startswith("one seed only")
    exact = decide(candidates, higher_is_better=False, deterministic=True)
    assert (exact.winner, exact.tied) == ("a", ("a",))
    assert exact.reason == "beats the runner-up by 0.1 (deterministic runs)"


def test_runs_on_different_seeds_cannot_be_paired():
    verdict = decide({"a": seeds(0.1, 0.1), "b": {5: 0.9, 6: 0.9}}, higher_is_better=False)
    assert verdict.tied == ("a", "b")
    assert verdict.reason.startswith("no common seed")


def test_a_tie_further_down_keeps_the_best_from_winning():
    # The runner-up is clearly beaten, but the third shares one seed only: it cannot be ruled out.
    candidates = {"best": CLEAR_BEST, "runner_up": CLEAR_WORSE, "one_seed": {0: 0.5}}
    verdict = decide(candidates, higher_is_better=False)
    assert (verdict.winner, verdict.tied, verdict.versus) == (None, ("best", "one_seed"), "one_seed")


def test_nan_values_are_dropped_before_deciding():
    candidates = {"a": {0: 0.1, 1: 0.1, 2: 0.1, 3: float("nan")}, "b": seeds(0.2, 0.2, 0.2, 0.2)}
    verdict = decide(candidates, higher_is_better=False)
    assert verdict.winner == "a"
    assert "all 3 common seeds" in verdict.reason
    only_nan = decide({"a": {0: float("nan")}, "b": {0: 1.0}}, higher_is_better=False)
    assert (only_nan.winner, only_nan.tied, only_nan.reason) == (None, ("b",), "only one configuration")


def test_no_candidate_and_one_candidate():
    assert decide({}, higher_is_better=True) == Verdict(None, (), "no candidate has a finite value")
    assert decide({}, higher_is_better=True).sentence() == "none"
    single = decide({"adam": seeds(0.3, 0.4)}, higher_is_better=True)
    assert (single.winner, single.tied, single.sentence()) == (None, ("adam",), "only adam")


def test_decide_is_invariant_to_the_order_of_candidates_and_seeds():
    candidates = {
        "a": CLEAR_BEST,
        "b": CLEAR_WORSE,
        "c": seeds(0.1005, 0.1012, 0.1003, 0.1041, 0.1019),
        "d": {4: 0.2, 0: 0.3},
    }
    expected = decide(candidates, higher_is_better=False)
    assert expected.tied == ("c", "a")  # c: mean 0.508 / 5 = 0.1016 < a: 0.102, crossing a on seeds
    for order in itertools.permutations(candidates):
        shuffled = {label: dict(reversed(list(candidates[label].items()))) for label in order}
        assert decide(shuffled, higher_is_better=False) == expected


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="tolerance"):
        decide({"a": {0: 1.0}}, higher_is_better=True, tolerance=-1.0)
    with pytest.raises(TypeError, match="higher_is_better"):
        decide({"a": {0: 1.0}}, higher_is_better="yes")
    with pytest.raises(TypeError, match=r"candidates\['a'\]"):
        decide({"a": [1.0, 2.0]}, higher_is_better=True)


# --- rank -------------------------------------------------------------------------------------------


def test_rank_orders_by_mean_then_label_with_empty_candidates_last():
    candidates = {"z": seeds(1.0, 3.0), "y": seeds(2.0), "x": seeds(0.5), "w": {0: float("nan")}}
    assert rank(candidates, higher_is_better=False) == ["x", "y", "z", "w"]
    assert rank(candidates, higher_is_better=True) == ["y", "z", "x", "w"]
