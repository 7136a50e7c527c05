"""Momentum, Nesterov, normalized GD (Prince, UDL 2023, eqs. 6.11-6.15) and Lion (Chen et al. 2023, Alg. 2).

Written from the book and the paper as float64 loops, independently of descentlab's rules.
"""

import numpy as np


def momentum_step(param, grad, state, hyper, t):
    """UDL eq. 6.11: m_{t+1} = beta m_t + (1 - beta) g; phi_{t+1} = phi_t - alpha m_{t+1}."""
    beta = hyper["momentum"]
    g = grad + hyper["weight_decay"] * param  # L2 term, the gradient of wd/2 ||phi||^2
    state["m"] = beta * state.get("m", np.zeros_like(param)) + (1.0 - beta) * g  # eq. 6.11, first line
    return param - hyper["lr"] * state["m"]  # eq. 6.11, second line


def nesterov_run(gradient, initial, group_indices, group_hypers, steps):
    """UDL eq. 6.12 literally: the gradient is evaluated at phi_t - alpha beta m_t by the closed form.

    ``gradient`` maps the list of all parameters to the list of their gradients (every parameter's
    look-ahead point is formed first, as one backward pass of a model would see them). Returns the true
    iterates phi after ``steps`` steps. ``lr`` and ``momentum`` may be callables of the 1-based step.
    """
    phis = [np.array(p, dtype=np.float64) for p in initial]
    ms = [np.zeros_like(p) for p in phis]
    hyper_of = {i: hyper for indices, hyper in zip(group_indices, group_hypers) for i in indices}

    def value(entry, t):
        return entry(t) if callable(entry) else entry

    for t in range(1, steps + 1):
        lookahead = []
        for i, (phi, m) in enumerate(zip(phis, ms)):
            hyper = hyper_of[i]
            lookahead.append(phi - value(hyper["lr"], t) * value(hyper["momentum"], t) * m)
        grads = gradient(lookahead)
        for i in range(len(phis)):
            hyper = hyper_of[i]
            alpha, beta = value(hyper["lr"], t), value(hyper["momentum"], t)
            g = grads[i] + hyper["weight_decay"] * lookahead[i]
            ms[i] = beta * ms[i] + (1.0 - beta) * g  # eq. 6.12, first line
            phis[i] = phis[i] - alpha * ms[i]  # eq. 6.12, second line
    return phis


def normalized_gd_step(param, grad, state, hyper, t):
    """UDL eqs. 6.13-6.14 (betas = 0) or with the moving averages of eq. 6.15; no bias correction."""
    beta, gamma = hyper["betas"]
    m = beta * state.get("m", np.zeros_like(param)) + (1.0 - beta) * grad  # eq. 6.13 / 6.15
    v = gamma * state.get("v", np.zeros_like(param)) + (1.0 - gamma) * grad**2  # eq. 6.13 / 6.15
    state["m"], state["v"] = m, v
    return param - hyper["lr"] * m / (np.sqrt(v) + hyper["eps"])  # eq. 6.14


def lion_step(param, grad, state, hyper, t):
    """Chen et al. 2023, Algorithm 2 (Lion), weight decay multiplied by lr."""
    beta1, beta2 = hyper["betas"]
    m = state.get("m", np.zeros_like(param))
    c = beta1 * m + (1.0 - beta1) * grad  # Alg. 2 line: c_t
    new_param = param - hyper["lr"] * (np.sign(c) + hyper["weight_decay"] * param)  # Alg. 2: theta_t
    state["m"] = beta2 * m + (1.0 - beta2) * grad  # Alg. 2: m_t
    return new_param
