"""Newton's method in float64 numpy, written from the textbook update theta <- theta - H^{-1} g.

Sources: Nocedal & Wright, Numerical Optimization (2006), sec. 2.2 (the Newton direction
p = -(grad^2 f)^{-1} grad f) and Algorithm 7.1 (line-search Newton-CG); Levenberg-Marquardt damping
replaces H by H + lambda I (Marquardt 1963 for the adaptive rule); Dauphin et al. 2014, sec. 4
(saddle-free Newton: |H| in place of H).
Gradient and Hessian are given as numpy functions, so nothing here shares code with descentlab.
"""

import numpy as np

from reference.line_search import backtracking


def newton_direction(H, g, damping=0.0):
    """p = -(H + damping I)^{-1} g (Newton direction, Levenberg-Marquardt damped)."""
    return -np.linalg.solve(H + damping * np.eye(len(g)), g)


def saddle_free_direction(H, g, damping=0.0):
    """p = -(|H| + damping I)^{-1} g with |H| = V |Lambda| V^T (Dauphin et al. 2014, sec. 4)."""
    eigenvalues, V = np.linalg.eigh(H)
    absolute_H = V @ np.diag(np.abs(eigenvalues)) @ V.T
    return -np.linalg.solve(absolute_H + damping * np.eye(len(g)), g)


def newton_cg_direction(B, g, tolerance=None, max_iterations=None):
    """Nocedal & Wright Algorithm 7.1 (inner CG loop) on B p = -g, with B given as a matrix."""
    g_norm = np.linalg.norm(g)
    eps = min(0.5, np.sqrt(g_norm)) * g_norm if tolerance is None else tolerance * g_norm  # eps_k
    z = np.zeros_like(g)  # z_0 = 0
    r = g.copy()  # r_0 = grad f_k
    d = -r  # d_0 = -r_0
    for j in range(max_iterations or len(g)):
        if d @ B @ d <= 0:  # negative curvature
            return -g if j == 0 else z
        alpha = (r @ r) / (d @ B @ d)  # alpha_j = r_j^T r_j / d_j^T B_k d_j
        z = z + alpha * d  # z_{j+1} = z_j + alpha_j d_j
        r_next = r + alpha * (B @ d)  # r_{j+1} = r_j + alpha_j B_k d_j
        if np.linalg.norm(r_next) < eps:
            return z
        beta = (r_next @ r_next) / (r @ r)  # beta_{j+1} = r_{j+1}^T r_{j+1} / r_j^T r_j
        d = -r_next + beta * d  # d_{j+1} = -r_{j+1} + beta_{j+1} d_j
        r = r_next
    return z


def newton_step(theta, oracle, state, hyper, t):
    """theta + alpha p with p the mode's direction; optional Armijo search or Marquardt's adaptive damping.

    With ``line_search="armijo"`` an ascent direction (g^T p >= 0) is replaced by -g (descentlab's
    documented fallback) and alpha is N&W Alg. 3.1 from lr. With ``adaptive_damping`` (Marquardt 1963) a
    step that increases f is undone and the damping multiplied by ``damping_factor``, otherwise divided;
    the damping lives in ``state`` from the case's starting value.
    """
    g, H = oracle.gradient(theta), oracle.hessian(theta)
    damping = state.setdefault("damping", hyper["damping"])
    if hyper["mode"] == "exact":
        p = newton_direction(H, g, damping)
    elif hyper["mode"] == "saddle-free":
        p = saddle_free_direction(H, g, damping)
    else:
        B = H + damping * np.eye(len(g))
        p = newton_cg_direction(B, g, hyper["cg_tolerance"], hyper["cg_max_iterations"])
    alpha = hyper["lr"]
    if hyper["line_search"] == "armijo":
        if g @ p >= 0 and np.linalg.norm(g) > 0:
            p = -g
        h0 = oracle.value(theta)
        alpha = backtracking(
            lambda a: oracle.value(theta + a * p),
            h0,
            g @ p,
            alpha,
            hyper["c1"],
            hyper["shrink"],
            hyper["max_evaluations"],
        )
    trial = theta + alpha * p
    if not hyper["adaptive_damping"]:
        return trial
    if oracle.value(trial) <= oracle.value(theta):
        state["damping"] = damping / hyper["damping_factor"]
        return trial
    state["damping"] = damping * hyper["damping_factor"]
    return theta


class FunctionOracle:
    """``value``, ``gradient`` and ``hessian`` of theta given as numpy functions (for :func:`newton_step`)."""

    def __init__(self, gradient, hessian, value=None):
        self.gradient, self.hessian, self.value = gradient, hessian, value


def newton_iterates(gradient, hessian, theta0, steps, lr=1.0, damping=0.0, mode="exact", cg_tolerance=None):
    """theta_{k+1} = theta_k + lr * p_k for ``steps`` steps; returns [theta_0, ..., theta_steps]."""
    hyper = dict(
        lr=lr,
        damping=damping,
        mode=mode,
        cg_tolerance=cg_tolerance,
        cg_max_iterations=None,
        line_search=None,
        adaptive_damping=False,
    )
    theta, state = np.asarray(theta0, dtype=np.float64).copy(), {}
    iterates = [theta.copy()]
    for k in range(1, steps + 1):
        theta = newton_step(theta, FunctionOracle(gradient, hessian), state, hyper, k)
        iterates.append(theta.copy())
    return iterates


def levenberg_marquardt_iterates(value, gradient, hessian, theta0, steps, damping, factor):
    """Adaptive damping (Marquardt 1963) with lr = 1 exact Newton steps. Returns (iterates, dampings)."""
    hyper = dict(
        lr=1.0, damping=damping, mode="exact", line_search=None, adaptive_damping=True, damping_factor=factor
    )
    theta, state = np.asarray(theta0, dtype=np.float64).copy(), {}
    iterates, dampings = [theta.copy()], [damping]
    for k in range(1, steps + 1):
        theta = newton_step(theta, FunctionOracle(gradient, hessian, value), state, hyper, k)
        iterates.append(theta.copy())
        dampings.append(state["damping"])
    return iterates, dampings
