"""sgd-vs-gd: both drawn paths against the Gabor loss written out in numpy (UDL eq. 6.8)."""

import itertools

import numpy as np

from descentlab.figures.sgd_vs_gd import BATCH_SIZE, GD, LR, SGD, START, STEPS
from descentlab.problems.textbook import GABOR_MINIMA, GABOR_X, GABOR_Y
from figures.drawn import drawn_line, panel

FIGURE = "sgd-vs-gd"
X, Y = np.array(GABOR_X), np.array(GABOR_Y)
N = len(X)
SURFACE = f"paths from ({START[0]:g}, {START[1]:g}), lr {LR:g}, {STEPS} steps"
LOSSES = "loss over steps: descent settles, SGD's noise escapes"


def per_sample(phi):
    """Squared residuals and their gradients (rows) through z = phi0 + 0.06 phi1 x, in float64."""
    z = phi[0] + 0.06 * phi[1] * X
    residual = np.sin(z) * np.exp(-(z**2) / 32) - Y
    dprediction_dz = (np.cos(z) - np.sin(z) * z / 16) * np.exp(-(z**2) / 32)
    gradients = np.stack([2 * residual * dprediction_dz, 2 * residual * dprediction_dz * 0.06 * X], axis=1)
    return residual**2, gradients


def loss(phi):
    return per_sample(phi)[0].sum()


def descend(start, lr, steps):
    """Full-batch gradient descent in float64, start included."""
    path = [np.array(start, dtype=float)]
    for _ in range(steps):
        path.append(path[-1] - lr * per_sample(path[-1])[1].sum(axis=0))
    return np.array(path)


def drawn_minima(result):
    axes = panel(result.figure, SURFACE)
    return drawn_line(axes, "global minimum")[0], drawn_line(axes, "local minima")


def test_descent_is_the_float64_loop_and_stops_in_a_local_minimum_of_the_finder(made):
    result, _ = made
    drawn = drawn_line(panel(result.figure, SURFACE), GD)
    np.testing.assert_allclose(drawn, descend(START, LR, STEPS), atol=2e-5)
    global_minimum, local = drawn_minima(result)
    np.testing.assert_allclose(global_minimum, GABOR_MINIMA[0], atol=1e-5)
    nearest = local[np.linalg.norm(local - drawn[-1], axis=1).argmin()]
    assert np.linalg.norm(nearest - drawn[-1]) < 1e-3, "descent ends at a local minimum"
    np.testing.assert_allclose(nearest, GABOR_MINIMA[7], atol=1e-5)  # (-0.17, 4.88), below the global one
    assert loss(nearest) > 10 * loss(global_minimum)


def test_sgd_ends_in_the_global_minimums_basin(made):
    result, _ = made
    global_minimum, local = drawn_minima(result)
    end = drawn_line(panel(result.figure, SURFACE), SGD)[-1]
    # Descent never climbs, so a point below every local minimum's loss lies in none of their basins.
    assert loss(end) < min(loss(point) for point in local)
    settled = descend(end, 0.02, 2000)[-1]  # the basin it is in, followed with small float64 steps
    np.testing.assert_allclose(settled, global_minimum, atol=1e-4)


def test_sgd_steps_carry_the_noise_of_minibatches_of_five_drawn_without_replacement(made):
    result, _ = made
    path = drawn_line(panel(result.figure, SURFACE), SGD)
    noise, expected = [], []
    for before, after in itertools.pairwise(path):
        gradients = per_sample(before)[1]
        noise.append((before - after) / LR - gradients.sum(axis=0))  # minibatch gradient - full gradient
        spread = ((gradients - gradients.mean(axis=0)) ** 2).sum(axis=1).mean()
        # (N / B) times a sum of B of N rows without replacement: covariance N^2 (N - B) / (B (N - 1)) S
        expected.append(N**2 * (N - BATCH_SIZE) / (BATCH_SIZE * (N - 1)) * spread)
    noise = np.array(noise)
    ratio = (noise**2).sum(axis=1).mean() / np.mean(expected)
    # measured 1.07; a bootstrap over the 300 steps puts 99 % of replicates in [0.75, 1.49], while
    # batches of 10 would give about 0.4 and the unscaled minibatch sum 1/36
    assert 0.6 < ratio < 1.6
    standard_error = noise.std(axis=0) / np.sqrt(len(noise))
    assert np.all(np.abs(noise.mean(axis=0)) < 4 * standard_error), "minibatch gradients are unbiased"


def test_drawn_losses_are_the_full_data_losses_and_sgds_are_far_noisier(made):
    result, _ = made
    axes = panel(result.figure, LOSSES)
    changes = {}
    for label in (GD, SGD):
        curve = drawn_line(axes, f"{label}: full-data loss")
        path = drawn_line(panel(result.figure, SURFACE), label)
        np.testing.assert_array_equal(curve[:, 0], np.arange(STEPS + 1))
        np.testing.assert_allclose(curve[:, 1], [loss(point) for point in path], rtol=1e-4)
        changes[label] = np.diff(curve[:, 1])
    assert np.all(changes[GD] <= 1e-5), "full-batch descent at this rate never raises the loss"
    # measured 1.8e3 (descent's variance is all in its first steps, SGD's comes from every step)
    assert np.var(changes[SGD]) > 100 * np.var(changes[GD])
    minibatch = drawn_line(axes, f"{SGD}: minibatch loss")
    np.testing.assert_array_equal(minibatch[:, 0], np.arange(1, STEPS + 1))
    # step t's minibatch loss is taken at iterate t - 1: an unbiased estimate of its full-data loss
    errors = minibatch[:, 1] - drawn_line(axes, f"{SGD}: full-data loss")[:-1, 1]
    assert abs(errors.mean()) < 4 * errors.std() / np.sqrt(len(errors))  # measured 2.2 standard errors
    assert np.var(np.diff(minibatch[:, 1])) > 10 * np.var(changes[SGD])  # measured 46
