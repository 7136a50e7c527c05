"""optimizers-bowl and momentum-nesterov: the drawn paths against float64 loops written from the books."""

import numpy as np
import pytest

from descentlab.figures.bowl import MOMENTA, NESTEROV_LR, NESTEROV_STEPS, SAITO_OPTIMIZERS, SAITO_STEPS
from figures.drawn import drawn_line, panel

FIGURE = "optimizers-bowl"
START = np.array([-7.0, 2.0])
CURVATURE = np.array([1 / 10, 2.0])  # f = x^2/20 + y^2 has gradient (x/10, 2y)


def saito_path(update):
    """30 updates of ``update(x, g, t) -> new x`` on the bowl, start included (optimizer_compare_naive.py)."""
    x, path = START.copy(), [START.copy()]
    for t in range(1, SAITO_STEPS + 1):
        x = update(x, CURVATURE * x, t)
        path.append(x.copy())
    return np.array(path)


def saito_momentum(lr, momentum=0.9):
    v = np.zeros(2)

    def update(x, g, t):
        v[:] = momentum * v - lr * g  # the book's Momentum.update
        return x + v

    return update


def saito_adagrad(lr):
    h = np.zeros(2)

    def update(x, g, t):
        h[:] += g * g
        return x - lr * g / (np.sqrt(h) + 1e-7)

    return update


def saito_adam(lr, beta1=0.9, beta2=0.999):
    m, v = np.zeros(2), np.zeros(2)

    def update(x, g, t):
        lr_t = lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
        m[:] += (1 - beta1) * (g - m)
        v[:] += (1 - beta2) * (g**2 - v)
        return x - lr_t * m / (np.sqrt(v) + 1e-7)

    return update


BOOK = {
    "SGD (lr 0.95)": lambda: lambda x, g, t: x - 0.95 * g,
    "Momentum (lr 0.1, momentum 0.9)": lambda: saito_momentum(0.1),
    "AdaGrad (lr 1.5)": lambda: saito_adagrad(1.5),
    "Adam (lr 0.3)": lambda: saito_adam(0.3),
}


@pytest.mark.parametrize("label", list(BOOK))
def test_each_panel_draws_the_books_path(made, label):
    result, _ = made
    path = drawn_line(panel(result.figure, label), label)
    np.testing.assert_allclose(path, saito_path(BOOK[label]()), atol=2e-5, rtol=1e-5)


def test_sgd_end_point_is_the_geometric_closed_form(made):
    result, _ = made
    end = drawn_line(panel(result.figure, "SGD (lr 0.95)"), "SGD (lr 0.95)")[-1]
    # each coordinate shrinks by (1 - lr h) per step: 0.905 in x, -0.9 in y
    expected = START * (1 - 0.95 * CURVATURE) ** SAITO_STEPS
    np.testing.assert_allclose(end, expected, rtol=1e-5)


def test_the_figure_uses_the_textbook_rates_and_writes_both_files(made):
    result, _ = made
    assert set(SAITO_OPTIMIZERS) == set(BOOK)
    assert result.png.stat().st_size > 10_000 and result.png.read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in result.svg.read_bytes()[:2000]
    assert result.trained == 4


def ema_momentum_matrix(lr, beta, h, nesterov):
    """The map (phi, m) -> (phi', m') of UDL eq. 6.11 (momentum) or 6.12 (Nesterov) for L = h phi^2 / 2."""
    if nesterov:  # m' = beta m + (1 - beta) h (phi - lr beta m)
        m_row = np.array([(1 - beta) * h, beta * (1 - (1 - beta) * h * lr)])
    else:  # m' = beta m + (1 - beta) h phi
        m_row = np.array([(1 - beta) * h, beta])
    phi_row = np.array([1.0, 0.0]) - lr * m_row  # phi' = phi - lr m'
    return np.stack([phi_row, m_row])


def udl_path(lr, beta, nesterov):
    path = np.zeros((NESTEROV_STEPS + 1, 2))
    for axis, h in enumerate(CURVATURE):
        matrix = ema_momentum_matrix(lr, beta, h, nesterov)
        for t in range(NESTEROV_STEPS + 1):
            path[t, axis] = (np.linalg.matrix_power(matrix, t) @ np.array([START[axis], 0.0]))[0]
    return path


@pytest.fixture(scope="module")
def momentum_figure(tmp_path_factory):
    from descentlab.figures import get_figure, make_figure

    return make_figure(get_figure("momentum-nesterov"), tmp_path_factory.mktemp("momentum")).figure


@pytest.mark.parametrize("beta", MOMENTA)
def test_momentum_and_nesterov_paths_follow_the_udl_recurrences(momentum_figure, beta):
    axes = panel(momentum_figure, f"β = {beta:g}")
    for name, nesterov in (("momentum", False), ("nesterov", True)):
        drawn = drawn_line(axes, f"{name} β={beta:g}")
        np.testing.assert_allclose(drawn, udl_path(NESTEROV_LR, beta, nesterov), atol=2e-5, rtol=1e-5)
    gradient_descent = drawn_line(axes, "gradient descent")
    expected = START * (1 - NESTEROV_LR * CURVATURE)[None, :] ** np.arange(NESTEROV_STEPS + 1)[:, None]
    np.testing.assert_allclose(gradient_descent, expected, atol=2e-5, rtol=1e-5)
    assert not np.allclose(drawn_line(axes, f"nesterov β={beta:g}"), drawn_line(axes, f"momentum β={beta:g}"))
