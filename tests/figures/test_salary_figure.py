"""salary-linear-unit: the book's printed weights and predictions, and both paths against float64 loops."""

import numpy as np
import pytest

from descentlab.figures.salary import BATCH, PER_SAMPLE, QUERY_YEARS
from figures.drawn import drawn_line, panel

FIGURE = "salary-linear-unit"
YEARS = np.array([5.0, 3.0, 8.0, 1.4, 10.1])
SALARY = np.array([5500.0, 2300.0, 7600.0, 1800.0, 11400.0])

# What the book prints after train(input_vecs, labels, 10, 0.01) (weights, bias, then '%.2f' predictions)
BOOK_WEIGHT, BOOK_BIAS = 1124.0634970262222, 85.485289
BOOK_PREDICTIONS = {3.4: 3907.30, 15.0: 16946.44, 1.5: 1771.58, 6.3: 7167.09}


def delta_rule_path(rate=0.01, passes=10):
    """The book's LinearUnit.train: per sample in data order, w += rate (t - y) x, b += rate (t - y)."""
    weight = bias = 0.0
    path = [(bias, weight)]
    for _ in range(passes):
        for x, target in zip(YEARS, SALARY):
            delta = target - (weight * x + bias)
            weight += rate * delta * x
            bias += rate * delta
            path.append((bias, weight))
    return np.array(path)


def batch_path(lr=0.001, passes=10):
    """Gradient descent on sum (w x + b - t)^2 over all five people, one step per pass."""
    bias = weight = 0.0
    path = [(bias, weight)]
    for _ in range(passes):
        residual = weight * YEARS + bias - SALARY
        bias, weight = bias - lr * 2 * residual.sum(), weight - lr * 2 * (residual * YEARS).sum()
        path.append((bias, weight))
    return np.array(path)


def surface(result):
    return panel(result.figure, "paths over the loss surface (raw units: badly conditioned)")


def test_the_float64_delta_rule_gives_the_books_printed_weights():
    bias, weight = delta_rule_path()[-1]
    assert weight == pytest.approx(BOOK_WEIGHT, rel=1e-15)
    assert round(bias, 6) == BOOK_BIAS


def test_drawn_end_point_is_the_books_weight_and_bias(made):
    result, _ = made
    bias, weight = drawn_line(surface(result), PER_SAMPLE)[-1]
    assert weight == pytest.approx(BOOK_WEIGHT, rel=2e-6)  # the lab trains in float32
    assert bias == pytest.approx(BOOK_BIAS, rel=2e-6)


def test_drawn_predictions_are_the_books_printed_salaries(made):
    result, _ = made
    drawn = drawn_line(
        panel(result.figure, "data and fitted linear units"), "predictions printed by the book"
    )
    np.testing.assert_allclose(drawn[:, 0], QUERY_YEARS)
    for year, salary in drawn:
        assert salary == pytest.approx(BOOK_PREDICTIONS[year], abs=0.01)


def test_both_drawn_paths_follow_the_float64_loops_update_by_update(made):
    result, _ = made
    np.testing.assert_allclose(
        drawn_line(surface(result), PER_SAMPLE), delta_rule_path(), rtol=2e-6, atol=1e-3
    )
    np.testing.assert_allclose(drawn_line(surface(result), BATCH), batch_path(), rtol=2e-6, atol=1e-3)


def test_least_squares_line_is_numpys(made):
    result, _ = made
    line = drawn_line(panel(result.figure, "data and fitted linear units"), "least squares")
    (intercept, slope), *_ = np.linalg.lstsq(np.stack([np.ones(5), YEARS], 1), SALARY, rcond=None)
    np.testing.assert_allclose(line[:, 1], intercept + slope * line[:, 0], rtol=1e-9)
