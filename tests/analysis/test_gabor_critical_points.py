"""UDL fig. 6.4: the critical points of the Gabor model's loss surface, found by the analysis tools."""

import numpy as np
from scipy.optimize import minimize

from descentlab.analysis import find_critical_points_2d
from descentlab.problems import get_problem


def test_gabor_minima_found_by_newton_on_the_gradient_match_scipy_minimisation():
    gabor = get_problem("gabor")
    points = find_critical_points_2d(gabor.function, gabor.bounds, starts_per_axis=30)
    minima = sorted((p for p in points if p.label == "minimum"), key=lambda p: p.value)
    assert len(minima) >= 3, "the Gabor surface has a global and several local minima"
    assert any(p.label == "saddle" for p in points), "between minima lie saddles"

    # Independent check: scipy's BFGS from each minimum's neighbourhood lands on the same point.
    def loss(phi):
        import torch

        return float(gabor.function(torch.tensor(phi, dtype=torch.float64)))

    for point in minima:
        result = minimize(loss, np.asarray(point.point) + 0.05, method="BFGS", options={"gtol": 1e-10})
        np.testing.assert_allclose(result.x, point.point, atol=1e-4)
    global_minimum = minima[0]
    assert all(global_minimum.value < p.value for p in minima[1:])
    # The problem's stored global minimum (found separately by the problems module) is the same point.
    # and every stored minimum is found (and nothing else is a minimum).
    stored = np.array(gabor.minima)
    found = np.array([p.point for p in minima])
    assert np.linalg.norm(stored[0] - found[0]) < 1e-4
    distances = np.linalg.norm(stored[:, None, :] - found[None, :, :], axis=2)
    assert len(found) == len(stored) and np.all(distances.min(axis=1) < 1e-4)
