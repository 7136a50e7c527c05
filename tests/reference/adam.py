"""Adam family written from Kingma & Ba 2015 (Algorithm 1), Reddi et al. 2018, Loshchilov & Hutter 2019."""

import numpy as np


def adam_step(param, grad, state, hyper, t):
    """Kingma & Ba 2015, Algorithm 1, with torch's placement of eps, AMSGrad and weight decay options."""
    beta1, beta2 = hyper.get("betas", (0.9, 0.999))
    eps, lr, wd = hyper.get("eps", 1e-8), hyper["lr"], hyper.get("weight_decay", 0.0)
    if hyper.get("decoupled_weight_decay"):
        param = param * (1.0 - lr * wd)  # Loshchilov & Hutter 2019, Algorithm 2 line 12 (eta_t = lr)
        g = grad
    else:
        g = grad + wd * param
    m = beta1 * state.get("m", np.zeros_like(param)) + (1 - beta1) * g  # Alg. 1: m_t
    v = beta2 * state.get("v", np.zeros_like(param)) + (1 - beta2) * g * g  # Alg. 1: v_t
    state["m"], state["v"] = m, v
    m_hat = m / (1 - beta1**t)  # Alg. 1: bias-corrected first moment
    if hyper.get("amsgrad"):
        state["v_max"] = np.maximum(state.get("v_max", np.zeros_like(param)), v)
        v = state["v_max"]
    v_hat = v / (1 - beta2**t)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps)
