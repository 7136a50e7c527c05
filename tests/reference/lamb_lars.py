"""LAMB (You et al. 2020, Algorithm 2) and LARS (You, Gitman & Ginsburg 2017, Algorithm 1; eqs. 5-6).

Float64 loops written from the papers, one tensor (the papers' "layer") at a time. Both papers leave a
zero norm undefined; these oracles use ratio 1 there, the rule the library documents (and apex, timm
and optax use). ``hyper`` may also select the widely used implementations' departures (documented in
descentlab.optim.trust_ratio), so their differences from the papers can be measured:
``bias_correction`` (False: LAMB arXiv v1 / apex option), ``trust_clip`` (timm's LAMBC: ratio <= 1).
"""

import numpy as np


def _ratio(numerator, denominator):
    """The trust ratio, 1 where either side is 0 (the zero-norm rule)."""
    return numerator / denominator if numerator > 0 and denominator > 0 else 1.0


def lamb_step(param, grad, state, hyper, t):
    """You et al. 2020, Algorithm 2, for one layer x^(i)."""
    beta1, beta2 = hyper["betas"]
    m = beta1 * state.get("m", np.zeros_like(param)) + (1 - beta1) * grad  # Alg. 2: m_t
    v = beta2 * state.get("v", np.zeros_like(param)) + (1 - beta2) * grad**2  # Alg. 2: v_t
    state["m"], state["v"] = m, v
    if hyper.get("bias_correction", True):
        m, v = m / (1 - beta1**t), v / (1 - beta2**t)  # Alg. 2: bias corrections
    r = m / (np.sqrt(v) + hyper["eps"])  # Alg. 2: r_t = m_t / (sqrt(v_t) + eps)
    u = r + hyper["weight_decay"] * param  # Alg. 2: r_t + lambda x_t
    low, high = hyper["phi_min"], hyper["phi_max"]
    high = np.inf if high is None else high
    phi = min(max(np.linalg.norm(param), low), high)  # sec. 3: phi(z) = min(max(z, gamma_l), gamma_u)
    ratio = _ratio(phi, np.linalg.norm(u)) if hyper["adapt"] else 1.0
    if hyper.get("trust_clip", False):
        ratio = min(ratio, 1.0)
    return param - hyper["lr"] * ratio * u  # Alg. 2: x_{t+1} = x_t - eta_t phi(||x||)/||u|| u


def lars_step(param, grad, state, hyper, t):
    """You, Gitman & Ginsburg 2017, Algorithm 1 for one layer w^l (variants: see LARS's docstring)."""
    beta, eta, variant = hyper["weight_decay"], hyper["trust_coefficient"], hyper["variant"]
    w_norm = np.linalg.norm(param)
    decayed = grad + beta * param
    # Algorithm 1's local-rate denominator ||g|| + beta ||w|| (eq. 6 with decay); optax's is ||g + beta w||
    denominator = np.linalg.norm(decayed) if variant == "optax" else np.linalg.norm(grad) + beta * w_norm
    # Alg. 1: lambda = eta ||w|| / (||g|| + beta ||w||) (eq. 6 if beta = 0); 1 if undefined or not adapted
    local_lr = _ratio(eta * w_norm, denominator) if hyper["adapt"] else 1.0
    gamma, momentum = hyper["lr"], hyper["momentum"]
    if variant == "timm":  # b <- m b + lambda (g + beta w); w <- w - gamma b
        state["b"] = momentum * state.get("b", np.zeros_like(param)) + local_lr * decayed
        return param - gamma * state["b"]
    # Alg. 1: v_{t+1} = m v_t + gamma lambda (g + beta w); w_{t+1} = w_t - v_{t+1}
    state["v"] = momentum * state.get("v", np.zeros_like(param)) + gamma * local_lr * decayed
    return param - state["v"]
