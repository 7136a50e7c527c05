"""line-search: brackets, trials and the chosen step against the closed form of the quadratic loss."""

import itertools

import numpy as np
import pytest

from descentlab.figures.line_search import FIRST_BRACKET, TOLERANCE
from descentlab.problems.textbook import LINEAR_X, LINEAR_Y
from figures.drawn import drawn_line, panel

FIGURE = "line-search"
GOLDEN = (np.sqrt(5) - 1) / 2
X, Y = np.array(LINEAR_X), np.array(LINEAR_Y)
DESIGN = np.stack([np.ones_like(X), X], axis=1)
# UDL notebook 6.1's start, as the float32 run holds it (the figure draws the run's own direction)
START = np.array([0.6, -0.2], dtype=np.float32).astype(np.float64)


def loss(phi):
    """Sum of squared residuals of phi0 + phi1 x (UDL eq. 2.5), for one phi or rows of them."""
    residuals = np.atleast_2d(phi) @ DESIGN.T - Y
    return (residuals**2).sum(axis=-1)


GRADIENT = 2 * DESIGN.T @ (DESIGN @ START - Y)
HESSIAN = 2 * DESIGN.T @ DESIGN
EXACT_STEP = GRADIENT @ GRADIENT / (GRADIENT @ HESSIAN @ GRADIENT)  # argmin of the parabola h(alpha)


def h(alpha):
    return loss(START[None, :] - np.asarray(alpha, dtype=float)[:, None] * GRADIENT[None, :])


def brackets(result):
    axes = panel(result.figure, "bracket a < b < c < d at each iteration")
    columns = [drawn_line(axes, name) for name in "abcd"]
    return np.stack([column[:, 0] for column in columns], axis=1), columns[0][:, 1]


def test_brackets_keep_golden_spacing_and_the_lower_interior_side(made):
    result, _ = made
    rows, iterations = brackets(result)
    np.testing.assert_array_equal(iterations, np.arange(len(rows)))
    assert rows[0, 0] == 0.0 and rows[0, 3] == pytest.approx(FIRST_BRACKET)
    for a, b, c, d in rows:
        assert a < b < c < d
        assert b == pytest.approx(d - GOLDEN * (d - a), rel=1e-9)
        assert c == pytest.approx(a + GOLDEN * (d - a), rel=1e-9)
    for (a, b, c, d), following in itertools.pairwise(rows):
        h_b, h_c = h([b, c])
        expected = (a, c) if h_b < h_c else (b, d)  # drop the side beyond the higher interior point
        np.testing.assert_allclose(following[[0, 3]], expected, rtol=1e-9)
    assert rows[-1, 3] - rows[-1, 0] <= TOLERANCE < rows[-2, 3] - rows[-2, 0]


def test_chosen_step_is_the_last_midpoint_and_brackets_the_exact_minimiser(made):
    result, _ = made
    rows, _ = brackets(result)
    curve = panel(result.figure, "loss along the search direction")
    (star,) = [line for line in curve.lines if line.get_label().startswith("chosen")]
    chosen, chosen_loss = star.get_xydata()[0]
    assert chosen == pytest.approx((rows[-1, 0] + rows[-1, 3]) / 2, rel=1e-12)
    assert rows[-1, 0] <= EXACT_STEP <= rows[-1, 3]
    assert abs(chosen - EXACT_STEP) <= TOLERANCE / 2
    assert chosen_loss == pytest.approx(h([chosen])[0], rel=1e-9)


def test_drawn_loss_curve_and_trials_follow_the_closed_form(made):
    result, _ = made
    curve = panel(result.figure, "loss along the search direction")
    drawn = drawn_line(curve, "h(α) = L(θ − α g)")
    np.testing.assert_allclose(drawn[:, 1], h(drawn[:, 0]), rtol=1e-9)
    assert drawn[0, 1] == pytest.approx(12.367, abs=5e-4)  # the loss notebook 6.1 prints at the start
    trials = drawn_line(curve, "trials")
    np.testing.assert_allclose(trials[:, 1], h(trials[:, 0]), rtol=1e-5)  # the run trains in float32


def test_the_step_drawn_on_the_surface_ends_at_start_minus_chosen_gradient(made):
    result, _ = made
    rows, _ = brackets(result)
    chosen = (rows[-1, 0] + rows[-1, 3]) / 2
    step = drawn_line(panel(result.figure, "the step on the loss surface"), "the step taken")
    np.testing.assert_allclose(step[0], START, rtol=1e-6)
    np.testing.assert_allclose(step[-1], START - chosen * GRADIENT, rtol=1e-4)
