"""Schedule-Free SGD and AdamW (Defazio et al. 2024, "The Road Less Scheduled", arXiv:2405.15682).

Written from the paper as float64 loops over the three sequences z, x, y, independently of descentlab:
SGD from eqs. (1)-(3) with the warmup weighting of Algorithm 1 (lines 8, 10), AdamW from Algorithm 1,
lines 5-11. The step returns y_{t+1}, the point where the next gradient is taken (what an optimizer's
parameters hold in train mode); the average x lives in ``state["x"]``.

The weight of step t in the average generalises Algorithm 1's gamma_t^2 (line 10) to t^r gamma_t^p, the
authors' ``r`` and ``weight_lr_power`` (r = 0, p = 2 is the paper). Variant "authors-code" of AdamW is
the authors' package since v1.3 (bias correction under the root, not in gamma_t), written from its
documented rule.
"""

import numpy as np


def _warmup(hyper, t):
    """min(1, t / T_warmup) of Algorithm 1, line 8 (no warmup when T_warmup = 0)."""
    warmup = hyper["warmup_steps"]
    return min(1.0, t / warmup) if warmup > 0 else 1.0


def _average_and_interpolate(state, hyper, t, gamma, beta):
    """Algorithm 1, lines 10-11, then line 5 of the next step: c_{t+1}, x_{t+1}, y_{t+1}."""
    weight = t ** hyper["r"] * gamma ** hyper["weight_lr_power"]
    state["weight_sum"] = state.get("weight_sum", 0.0) + weight
    c = weight / state["weight_sum"] if state["weight_sum"] > 0 else 0.0  # line 10
    state["x"] = (1.0 - c) * state["x"] + c * state["z"]  # line 11, eq. (3)
    return (1.0 - beta) * state["z"] + beta * state["x"]  # line 5, eq. (1)


def _start(param, state):
    if "z" not in state:
        state["z"], state["x"] = param.copy(), param.copy()  # z_1 = x_1 (Algorithm 1, line 2)


def schedule_free_sgd_step(param, grad, state, hyper, t):
    """Eqs. (1)-(3): y = (1 - beta) z + beta x; z <- z - gamma_t (g(y) + lambda y); x <- average."""
    _start(param, state)
    gamma = hyper["lr"] * _warmup(hyper, t)
    g = grad + hyper["weight_decay"] * param  # the authors' L2 term at y (the paper has none)
    state["z"] = state["z"] - gamma * g  # eq. (2)
    return _average_and_interpolate(state, hyper, t, gamma, hyper["momentum"])


def schedule_free_adamw_step(param, grad, state, hyper, t):
    """Algorithm 1 (variant "paper") or the authors' v1.3 form ("authors-code")."""
    _start(param, state)
    beta1, beta2 = hyper["betas"]
    state["v"] = beta2 * state.get("v", np.zeros_like(param)) + (1.0 - beta2) * grad**2  # line 7
    correction = 1.0 - beta2**t
    if hyper["variant"] == "paper":
        gamma = hyper["lr"] * np.sqrt(correction) * _warmup(hyper, t)  # line 8
        denominator = np.sqrt(state["v"]) + hyper["eps"]
    else:
        gamma = hyper["lr"] * _warmup(hyper, t)
        denominator = np.sqrt(state["v"] / correction) + hyper["eps"]
    # line 9: z_{t+1} = z_t - gamma_t g_t / (sqrt(v_t) + eps) - gamma_t lambda y_t
    state["z"] = state["z"] - gamma * grad / denominator - gamma * hyper["weight_decay"] * param
    return _average_and_interpolate(state, hyper, t, gamma, beta1)
