import numpy as np
import pytest
import torch

from descentlab.analysis import (
    check_convexity_2d,
    classify_model_point,
    classify_point_2d,
    find_critical_points_2d,
    label_from_evidence,
    plot_critical_points,
    save_figure,
)
from descentlab.analysis.parameter_vector import assign_parameter_vector


def himmelblau(points):
    x, y = points[..., 0], points[..., 1]
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def rosenbrock(points):
    x, y = points[..., 0], points[..., 1]
    return 100 * (y - x**2) ** 2 + (1 - x) ** 2


# Himmelblau (1972); the saddles and the maximum from the literature, to 6 decimals.
HIMMELBLAU = {
    "minimum": [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)],
    "maximum": [(-0.270845, -0.923039)],
    "saddle": [(0.086678, 2.884255), (-3.073026, -0.081353), (3.385154, 0.073852), (-0.127961, -1.953715)],
}


def test_himmelblau_critical_points_are_found_and_labelled():
    points = find_critical_points_2d(himmelblau, ((-5, 5), (-5, 5)))
    assert len(points) == 9
    for label, expected in HIMMELBLAU.items():
        found = np.array([point.point for point in points if point.label == label])
        assert len(found) == len(expected), label
        for location in expected:
            assert np.min(np.linalg.norm(found - np.array(location), axis=1)) < 2e-6, (label, location)
    for point in points:
        if point.label == "minimum":
            assert point.value == pytest.approx(0.0, abs=1e-20)

    def gradient(x, y, h=1e-6):  # central differences in numpy, independent of autograd
        def f(a, b):
            return (a**2 + b - 11) ** 2 + (a + b**2 - 7) ** 2

        return np.array([(f(x + h, y) - f(x - h, y)) / (2 * h), (f(x, y + h) - f(x, y - h)) / (2 * h)])

    for point in points:
        assert np.linalg.norm(gradient(*point.point)) < 1e-5


def test_saddle_of_x_squared_minus_y_squared():
    points = find_critical_points_2d(lambda p: p[..., 0] ** 2 - p[..., 1] ** 2, ((-1, 1), (-2, 2)))
    assert len(points) == 1
    assert points[0].label == "saddle"
    assert points[0].point == pytest.approx((0.0, 0.0), abs=1e-12)
    assert points[0].classification.eigenvalues == pytest.approx((-2.0, 2.0))


def test_classify_point_2d_gives_label_and_evidence():
    bowl = classify_point_2d(lambda p: p[..., 0] ** 2 + 3 * p[..., 1] ** 2, (0.0, 0.0))
    assert bowl.label == "minimum" and bowl.eigenvalues == pytest.approx((2.0, 6.0))
    assert classify_point_2d(lambda p: -(p[..., 0] ** 2) - p[..., 1] ** 2, (0.0, 0.0)).label == "maximum"
    flat = classify_point_2d(lambda p: p[..., 0] ** 4 + p[..., 1] ** 2, (0.0, 0.0))
    assert flat.label == "flat" and flat.eigenvalues == pytest.approx((0.0, 2.0))
    slope = classify_point_2d(lambda p: p[..., 0] ** 2 + p[..., 1] ** 2, (1.0, 1.0))
    assert slope.label == "not critical" and slope.gradient_norm == pytest.approx(2 * np.sqrt(2))
    assert "not critical: |grad| = 2.83" in slope.explanation()
    # A saddle stays a saddle even with a zero eigenvalue among mixed signs.
    assert label_from_evidence(0.0, torch.tensor([-1.0, 0.0, 1.0])).label == "saddle"


def test_classify_model_point_at_and_away_from_the_least_squares_solution(linear_regression):
    solution = torch.as_tensor(linear_regression.least_squares_solution())
    assign_parameter_vector(linear_regression.model, solution)
    result = classify_model_point(linear_regression.model, linear_regression.loss, gradient_tolerance=1e-9)
    assert result.label == "minimum" and result.exact
    expected = np.linalg.eigh(linear_regression.closed_form_hessian())[0]
    assert result.eigenvalues == pytest.approx(tuple(expected))
    assign_parameter_vector(linear_regression.model, solution + 0.1)
    assert classify_model_point(linear_regression.model, linear_regression.loss).label == "not critical"
    # Above max_parameters only the Lanczos extremes are used.
    assign_parameter_vector(linear_regression.model, solution)
    extremes = classify_model_point(
        linear_regression.model, linear_regression.loss, gradient_tolerance=1e-9, max_parameters=2
    )
    assert extremes.label == "minimum" and not extremes.exact
    assert extremes.eigenvalues == pytest.approx((expected[0], expected[-1]))


def test_convexity_check_says_yes_for_a_convex_quadratic():
    report = check_convexity_2d(
        lambda p: p[..., 0] ** 2 / 20 + p[..., 1] ** 2, ((-3, 3), (-3, 3)), resolution=41
    )
    assert report.convex
    assert report.smallest_eigenvalue == pytest.approx(0.1)
    assert report.violations.shape == (0, 2)
    assert report.summary().startswith("convex on the grid")


def test_convexity_check_says_no_for_rosenbrock_and_says_where():
    report = check_convexity_2d(rosenbrock, ((-2, 2), (-1, 3)), resolution=81)
    assert not report.convex
    # det H = 80000 (x^2 - y) + 400, negative exactly where y > x^2 + 1/200 (the trace is positive there).
    x, y = torch.meshgrid(report.xs, report.ys, indexing="xy")
    margin = y - x**2 - 0.005
    clear = margin.abs() > 1e-6
    assert torch.equal((report.min_eigenvalues < -report.tolerance)[clear], (margin > 0)[clear])
    assert (report.violations[:, 1] > report.violations[:, 0] ** 2).all()
    assert "not convex" in report.summary()


def test_critical_point_plot_is_written(tmp_path):
    figure = plot_critical_points(himmelblau, ((-5, 5), (-5, 5)), resolution=60)
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == ["minimum (4)", "saddle (4)", "maximum (1)"]
    assert save_figure(figure, tmp_path / "himmelblau.png").stat().st_size > 1000


def test_bad_bounds_are_rejected():
    with pytest.raises(ValueError, match="min < max"):
        find_critical_points_2d(himmelblau, ((1, -1), (0, 1)))
    with pytest.raises(ValueError, match="resolution must be >= 2, got 1"):
        check_convexity_2d(himmelblau, ((-1, 1), (-1, 1)), resolution=1)
    with pytest.raises(ValueError, match="starts_per_axis must be >= 2, got 1"):
        find_critical_points_2d(himmelblau, ((-1, 1), (-1, 1)), starts_per_axis=1)
    with pytest.raises(ValueError, match="min < max"):  # the plot checks its box as the finder does
        plot_critical_points(himmelblau, ((-1, 1), (2, 2)), points=[])
