"""Adam family written from the papers: Kingma & Ba 2015, Reddi et al. 2018, Loshchilov & Hutter 2019,
Dozat 2016 (NAdam) and Liu et al. 2020 (RAdam), plus torch's documented forms where they differ."""

import math

import numpy as np
import torch


def _moments(state, g, beta1, beta2):
    """Kingma & Ba 2015, Algorithm 1 lines 'm_t <- ...' and 'v_t <- ...' (biased moment estimates)."""
    m = beta1 * state.get("m", np.zeros_like(g)) + (1 - beta1) * g
    v = beta2 * state.get("v", np.zeros_like(g)) + (1 - beta2) * g * g
    state["m"], state["v"] = m, v
    return m, v


def adam_step(param, grad, state, hyper, t):
    """Kingma & Ba 2015, Algorithm 1, with torch's placement of eps, AMSGrad and weight decay options;
    the variants "efficient-eps" (K&B sec. 2, last paragraph), "amsgrad-paper" (Reddi et al. 2018,
    Algorithm 2) and AdamW's "paper" (Loshchilov & Hutter 2019, Algorithm 2)."""
    beta1, beta2 = (float(b) for b in hyper["betas"])
    eps, lr, wd = hyper["eps"], float(hyper["lr"]), hyper["weight_decay"]
    variant = hyper["variant"]
    decoupled = hyper["decoupled_weight_decay"]
    if decoupled and variant == "paper":
        g = grad
    elif decoupled:
        param = param * (1.0 - lr * wd)  # Loshchilov & Hutter 2019, Algorithm 2 line 12 (eta_t = lr)
        g = grad
    else:
        g = grad + wd * param
    m, v = _moments(state, g, beta1, beta2)
    if hyper["amsgrad"]:
        # Reddi et al. 2018, Algorithm 2: v_hat_t = max(v_hat_{t-1}, v_t)
        state["v_max"] = np.maximum(state.get("v_max", np.zeros_like(param)), v)
        v = state["v_max"]
    if variant == "amsgrad-paper":
        # Reddi et al. 2018, Algorithm 2: x_{t+1} = x_t - alpha_t m_t / sqrt(v_hat_t); no bias correction
        return param - lr * m / (np.sqrt(v) + eps)
    if variant == "efficient-eps":
        # Kingma & Ba 2015, end of sec. 2: alpha_t = alpha sqrt(1 - beta2^t) / (1 - beta1^t),
        # theta_t = theta_{t-1} - alpha_t m_t / (sqrt(v_t) + eps_hat)
        alpha_t = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        return param - alpha_t * m / (np.sqrt(v) + eps)
    m_hat = m / (1 - beta1**t)  # Alg. 1: bias-corrected first moment
    v_hat = v / (1 - beta2**t)  # Alg. 1: bias-corrected second moment
    adam_update = m_hat / (np.sqrt(v_hat) + eps)
    if decoupled and variant == "paper":
        # Loshchilov & Hutter 2019, Algorithm 2: eta_t = SetScheduleMultiplier(t) (line 11), read as
        # lr / initial_lr; line 12:
        #   theta_t = theta_{t-1} - eta_t (alpha m_hat / (sqrt(v_hat) + eps) + lambda theta_{t-1}),
        # with alpha * eta_t = lr.
        initial_lr = float(hyper.get("initial_lr", 0.0))
        eta_t = lr / initial_lr if initial_lr > 0 else 1.0
        return param - (lr * adam_update + eta_t * wd * param)
    return param - lr * adam_update


def _mu_product_dtype():
    # torch keeps NAdam's mu_product as a float32 scalar tensor (float64 only under a float64 default
    # dtype) and computes its step sizes from that stored value; the reference stores it the same way so
    # that it checks the algorithm and not a float32 rounding of the product.
    return np.float64 if torch.get_default_dtype() == torch.float64 else np.float32


def nadam_step(param, grad, state, hyper, t):
    """Dozat 2016, "Incorporating Nesterov Momentum into Adam", Algorithm 2 (variant "paper"), and the
    torch/Keras form (variant "torch") whose first moment uses the constant beta1 instead of mu_t."""
    beta1, beta2 = (float(b) for b in hyper["betas"])
    eps, lr, wd = hyper["eps"], float(hyper["lr"]), hyper["weight_decay"]
    psi = hyper["momentum_decay"]
    if hyper["decoupled_weight_decay"]:
        param = param * (1.0 - lr * wd)  # Loshchilov & Hutter 2019, Algorithm 2 line 12 (eta_t = lr)
        g = grad
    else:
        g = grad + wd * param
    # Momentum schedule of Dozat's experiments (sec. 3): mu_t = beta1 (1 - 0.5 * 0.96^(t psi))
    mu_t = beta1 * (1 - 0.5 * 0.96 ** (t * psi))
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((t + 1) * psi))
    dtype = _mu_product_dtype()
    product = dtype(dtype(state.get("mu_product", 1.0)) * dtype(mu_t))  # prod_{i=1}^{t} mu_i
    state["mu_product"] = product
    g_hat = g / (1 - float(product))  # Alg. 2: g_hat = g_t / (1 - prod_{i<=t} mu_i)
    first_decay = mu_t if hyper["variant"] == "paper" else beta1
    # Alg. 2: m_t = mu_t m_{t-1} + (1 - mu_t) g_t   (torch/Keras: beta1 in place of mu_t)
    m = first_decay * state.get("m", np.zeros_like(g)) + (1 - first_decay) * g
    m_hat = m / (1 - float(product) * mu_next)  # Alg. 2: m_hat = m_t / (1 - prod_{i<=t+1} mu_i)
    n = beta2 * state.get("n", np.zeros_like(g)) + (1 - beta2) * g * g  # Alg. 2: n_t
    n_hat = n / (1 - beta2**t)  # Alg. 2: n_hat = n_t / (1 - nu^t)
    state["m"], state["n"] = m, n
    m_bar = (1 - mu_t) * g_hat + mu_next * m_hat  # Alg. 2: m_bar
    return param - lr * m_bar / (np.sqrt(n_hat) + eps)  # Alg. 2: theta_t


def radam_step(param, grad, state, hyper, t):
    """Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond", Algorithm 2
    (variant "paper": threshold rho_t > 4), torch's threshold rho_t > 5 (variant "torch"), and the authors'
    public code (LiyuanLucasLiu/RAdam radam/radam.py: rho_t >= 5; below it no update unless
    degenerated_to_sgd, i.e. variant "authors-code-sgd"; decoupled decay only on updating steps)."""
    beta1, beta2 = (float(b) for b in hyper["betas"])
    eps, lr, wd = hyper["eps"], float(hyper["lr"]), hyper["weight_decay"]
    variant = hyper["variant"]
    decoupled = hyper["decoupled_weight_decay"]
    g = grad if decoupled else grad + wd * param
    m = beta1 * state.get("m", np.zeros_like(g)) + (1 - beta1) * g  # Alg. 2: m_t
    v = beta2 * state.get("v", np.zeros_like(g)) + (1 - beta2) * g * g  # Alg. 2: v_t
    state["m"], state["v"] = m, v
    m_hat = m / (1 - beta1**t)  # Alg. 2: m_hat_t
    rho_inf = 2 / (1 - beta2) - 1  # Alg. 2: rho_inf
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)  # Alg. 2: rho_t
    if variant == "paper":
        rectified = rho_t > 4  # Alg. 2: 'if rho_t > 4'
    elif variant in ("authors-code", "authors-code-sgd"):
        rectified = rho_t >= 5
    else:
        rectified = rho_t > 5
    if not rectified and variant == "authors-code":
        return param  # the authors' code with degenerated_to_sgd=False skips the update (and the decay)
    if decoupled:
        param = param - lr * wd * param
    if not rectified:
        return param - lr * m_hat  # Alg. 2 'else' branch: un-adapted momentum step
    l_t = math.sqrt(1 - beta2**t) / (np.sqrt(v) + eps)  # Alg. 2: l_t (eps added to sqrt(v_t))
    r_t = math.sqrt(
        (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
    )  # Alg. 2: r_t
    return param - lr * r_t * m_hat * l_t  # Alg. 2: rectified step
