"""Adafactor written from Shazeer & Stern 2018 (arXiv:1804.04235), Algorithms 4 and 5, in NumPy float64.

The paper's sums (not means) over rows and columns, one matrix at a time: a tensor of more than two
dimensions is a stack of matrices over its last two (the paper has none; torch, tensor2tensor and HF
factor so), with the RMS of clipping and of the relative step over the whole tensor. torch.optim's
departures (where eps1 enters, lr as the cap of rho_t, decoupled weight decay) are marked where they enter.
"""

import numpy as np


def _rms(x):
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def _factored_step(g, state, beta2, eps1, torch_form):
    """Alg. 4 on each n x m matrix of ``g`` (shape (..., n, m)): returns U_t = G_t / sqrt(V_hat_t)."""
    n, m = g.shape[-2:]
    matrices = g.reshape(-1, n, m)
    rows = state.setdefault("R", np.zeros((len(matrices), n)))  # R_0 = 0
    cols = state.setdefault("C", np.zeros((len(matrices), m)))  # C_0 = 0
    out = np.empty_like(matrices)
    for k, G in enumerate(matrices):
        squares = G * G if torch_form else G * G + eps1 * np.ones((n, m))  # G_t^2 + eps1 1_n 1_m^T
        rows[k] = beta2 * rows[k] + (1 - beta2) * squares @ np.ones(m)  # R_t
        cols[k] = beta2 * cols[k] + (1 - beta2) * np.ones(n) @ squares  # C_t
        if torch_form:
            # torch: R/m and C/n (means); mean(R/m) floored at eps1, V_hat floored at eps1^2
            v_hat = np.outer(rows[k], cols[k]) / (n * m) / max(rows[k].sum() / (n * m), eps1)
            v_hat = np.maximum(v_hat, eps1 * eps1)
        else:
            v_hat = np.outer(rows[k], cols[k]) / (np.ones(n) @ rows[k])  # V_hat_t = R_t C_t / 1_n^T R_t
        out[k] = G / np.sqrt(v_hat)  # U_t
    return out.reshape(g.shape)


def _unfactored_step(g, state, beta2, eps1, torch_form):
    """Alg. 5: V_hat_t = beta2_t V_hat_{t-1} + (1 - beta2_t)(G_t^2 + eps1 1_n); U_t = G_t / sqrt(V_hat_t)."""
    v = state.get("V", np.zeros_like(g))
    v = beta2 * v + (1 - beta2) * (g * g if torch_form else g * g + eps1)
    state["V"] = v
    return g / np.sqrt(np.maximum(v, eps1 * eps1) if torch_form else v)  # torch: V_hat floored at eps1^2


def adafactor_step(param, grad, state, hyper, t):
    """One step of Algorithm 4 (``param.ndim >= 2``) or Algorithm 5, with the torch form's departures."""
    torch_form = hyper["variant"] == "torch"
    eps1, eps2 = hyper["eps"]
    if eps1 is None:  # torch: the dtype's machine epsilon; the paper proposes eps1 = 1e-30
        eps1 = float(np.finfo(np.float64).eps) if torch_form else 1e-30
    beta2 = 1.0 - t ** hyper["beta2_decay"]  # sec. 6: beta2_t = 1 - t^(-c), c = 0.8 (beta2_1 = 0)
    rho = min(hyper["lr"], 1.0 / np.sqrt(t))  # sec. 7: rho_t = min(10^-2, 1/sqrt(t)); lr for 10^-2
    alpha = max(eps2, _rms(param)) * rho  # sec. 7: alpha_t = max(eps2, RMS(X_{t-1})) rho_t
    if param.ndim >= 2:
        u = _factored_step(grad, state, beta2, eps1, torch_form)
    else:
        u = _unfactored_step(grad, state, beta2, eps1, torch_form)
    u_hat = u / max(1.0, _rms(u) / hyper["d"])  # sec. 5: update clipping with threshold d
    step = alpha * u_hat
    if hyper["beta1"] > 0:  # not in Alg. 4/5: tensor2tensor's momentum over the scaled update
        state["m"] = hyper["beta1"] * state.get("m", np.zeros_like(param)) + (1 - hyper["beta1"]) * step
        step = state["m"]
    decayed = (1 - hyper["lr"] * hyper["weight_decay"]) * param  # torch's decoupled decay (not in the paper)
    return decayed - step  # X_t = X_{t-1} - alpha_t U_hat_t
