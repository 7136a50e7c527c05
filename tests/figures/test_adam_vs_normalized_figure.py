"""adam-vs-normalized: the drawn paths against the ravine's closed form, UDL eq. 6.14 and torch's Adam."""

import numpy as np
import pytest
import torch

from descentlab.figures.adam_vs_normalized import (
    ADAM,
    DISTANCE_TITLE,
    GD,
    GD_LR,
    NORMALIZED,
    STEP_LR,
    STEPS,
)
from descentlab.problems import get_problem
from figures.drawn import drawn_line, panel

FIGURE = "adam-vs-normalized"
START = np.array([-7.0, 2.0])
CURVATURES = np.array([2 / 200, 2.0])  # the Hessian of x^2/200 + y^2


def gradient(point):
    return CURVATURES * point


def test_the_ravines_curvatures_differ_two_hundredfold():
    function = get_problem("ravine").function
    for point in (START, [0.0, 0.0], [4.0, -3.0]):
        hessian = torch.autograd.functional.hessian(function, torch.tensor(point, dtype=torch.float64))
        np.testing.assert_allclose(hessian.numpy(), np.diag(CURVATURES), rtol=1e-12, atol=1e-12)
        low, high = torch.linalg.eigvalsh(hessian).tolist()
        assert high / low == pytest.approx(200.0) and high / low >= 100


def test_descent_follows_the_closed_form_and_no_stable_rate_gets_near(made):
    result, _ = made
    drawn = drawn_line(panel(result.figure, GD), GD)
    steps = np.arange(STEPS + 1)[:, None]
    np.testing.assert_allclose(drawn, START * (1 - GD_LR * CURVATURES) ** steps, rtol=1e-5, atol=1e-6)
    assert GD_LR * CURVATURES.max() < 2, "the rate is stable along y"
    # at any stable rate (lr < 2 / 2) x shrinks by at least the factor 1 - 2 * 0.01 / 2 a step
    bound = abs(START[0]) * (1 - 2 * CURVATURES.min() / CURVATURES.max()) ** STEPS
    assert abs(drawn[-1, 0]) > bound > 3.8


def test_normalized_steps_are_eq_6_14_and_end_within_one_step_of_the_minimum(made):
    result, _ = made
    point, expected = START.copy(), [START.copy()]
    for _ in range(STEPS):  # UDL eq. 6.14 with beta = gamma = 0: phi <- phi - lr g / (sqrt(g^2) + eps)
        g = gradient(point)
        point = point - STEP_LR * g / (np.sqrt(g**2) + 1e-8)
        expected.append(point.copy())
    drawn = drawn_line(panel(result.figure, NORMALIZED), NORMALIZED)
    np.testing.assert_allclose(drawn, np.array(expected), atol=1e-5)
    np.testing.assert_allclose(drawn[1:24, 0] - drawn[:23, 0], STEP_LR, rtol=1e-4)  # lr a step along x too
    assert np.abs(drawn[-10:]).max() <= STEP_LR, "then it oscillates within lr of the minimum"


def test_adam_is_torchs_adam_in_float64(made):
    result, _ = made
    point = torch.tensor(START, requires_grad=True)
    optimizer = torch.optim.Adam([point], lr=STEP_LR)
    expected = [START.copy()]
    for _ in range(STEPS):
        optimizer.zero_grad()
        (0.5 * (torch.tensor(CURVATURES) * point**2).sum()).backward()
        optimizer.step()
        expected.append(point.detach().numpy().copy())
    np.testing.assert_allclose(drawn_line(panel(result.figure, ADAM), ADAM), np.array(expected), atol=1e-4)


def test_drawn_distances_rank_normalized_and_adam_far_ahead_of_descent(made):
    result, _ = made
    axes = panel(result.figure, DISTANCE_TITLE)
    ends = {}
    for label in (GD, NORMALIZED, ADAM):
        curve = drawn_line(axes, label)
        path = drawn_line(panel(result.figure, label), label)
        np.testing.assert_allclose(curve[:, 1], np.linalg.norm(path, axis=1), rtol=1e-12)
        ends[label] = curve[-1, 1]
    steps = np.arange(STEPS + 1)
    closed = drawn_line(axes, f"descent's closed form at lr {GD_LR:g}")
    np.testing.assert_allclose(
        closed[:, 1], np.linalg.norm(START * (1 - GD_LR * CURVATURES) ** steps[:, None], axis=1), rtol=1e-12
    )
    bound = drawn_line(axes, "bound for descent at any stable rate (lr < 1)")
    np.testing.assert_allclose(bound[:, 1], 7 * 0.99**steps, rtol=1e-12)
    assert np.all(drawn_line(axes, GD)[:, 1] > bound[:, 1])
    assert ends[NORMALIZED] <= np.sqrt(2) * STEP_LR and ends[ADAM] < STEP_LR
    assert max(ends[NORMALIZED], ends[ADAM]) < ends[GD] / 10
