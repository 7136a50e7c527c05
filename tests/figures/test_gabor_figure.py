"""gabor-surface: drawn critical points and path ends against the book's formula written out in numpy."""

import numpy as np
import pytest

from descentlab.figures.gabor import STARTS
from descentlab.problems.textbook import GABOR_MINIMA, GABOR_X, GABOR_Y
from figures.drawn import drawn_line, panel

FIGURE = "gabor-surface"
X, Y = np.array(GABOR_X), np.array(GABOR_Y)


def loss_and_gradient(phi):
    """UDL eq. 6.8 least squares and its chain-rule gradient through z = phi0 + 0.06 phi1 x."""
    z = phi[0] + 0.06 * phi[1] * X
    residual = np.sin(z) * np.exp(-(z**2) / 32) - Y
    dprediction_dz = (np.cos(z) - np.sin(z) * z / 16) * np.exp(-(z**2) / 32)
    gradient = np.array(
        [np.sum(2 * residual * dprediction_dz), np.sum(2 * residual * dprediction_dz * 0.06 * X)]
    )
    return np.sum(residual**2), gradient


def hessian(phi, h=1e-5):
    """Central differences of the hand-derived gradient."""
    columns = [
        (loss_and_gradient(phi + e)[1] - loss_and_gradient(phi - e)[1]) / (2 * h) for e in np.eye(2) * h
    ]
    return np.stack(columns, axis=1)


def surface(result):
    (axes,) = [a for a in result.figure.axes if a.get_title().startswith("loss surface")]
    return axes


def test_drawn_minima_are_the_stored_minima_with_the_global_one_apart(made):
    result, _ = made
    axes = surface(result)
    (global_minimum,) = drawn_line(axes, "global minimum")
    local = drawn_line(axes, "local minima")
    np.testing.assert_allclose(global_minimum, GABOR_MINIMA[0], atol=1e-5)
    stored = np.array(GABOR_MINIMA[1:])
    assert len(local) == len(stored)
    assert np.linalg.norm(stored[:, None] - local[None], axis=2).min(axis=1).max() < 1e-5
    values = [loss_and_gradient(point)[0] for point in local]
    assert loss_and_gradient(global_minimum)[0] < min(values)


def test_drawn_saddles_are_stationary_with_an_indefinite_hessian(made):
    result, _ = made
    saddles = drawn_line(surface(result), "saddle points")
    assert len(saddles) >= 10, "between eight minima lie many saddles"
    for point in saddles:
        assert np.linalg.norm(loss_and_gradient(point)[1]) < 1e-6
        low, high = np.linalg.eigvalsh(hessian(point))
        assert low < 0 < high


def test_paths_start_where_declared_and_end_in_eight_different_minima(made):
    result, _ = made
    axes = surface(result)
    stored = np.array(GABOR_MINIMA)
    reached = set()
    for start in STARTS:
        path = drawn_line(axes, f"from ({start[0]:g}, {start[1]:g})")
        np.testing.assert_allclose(path[0], start, rtol=1e-6)
        distances = np.linalg.norm(stored - path[-1], axis=1)
        assert distances.min() < 0.02, f"the path from {start} ends at {path[-1]}, at no minimum"
        reached.add(int(distances.argmin()))
    assert reached == set(range(len(stored)))


def test_loss_curves_end_at_the_loss_of_the_drawn_end_points(made):
    result, _ = made
    curves = panel(result.figure, "loss of each path (grey: the minima's values; dashed: global)")
    for start in STARTS:
        label = f"from ({start[0]:g}, {start[1]:g})"
        end = drawn_line(surface(result), label)[-1]
        final_loss = drawn_line(curves, label)[-1, 1]
        assert final_loss == pytest.approx(loss_and_gradient(end)[0], rel=1e-3)
