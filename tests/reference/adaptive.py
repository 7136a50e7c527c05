"""Per-coordinate adaptive methods written from their papers: AdaGrad, RMSprop, AdaDelta, AdaMax.

Each step function follows the cited equations in plain NumPy float64; torch's additions (lr_decay,
initial accumulator, coupled weight decay, eps placement) are marked where they enter.
"""

import numpy as np


def _coupled_decay(param, grad, hyper):
    # torch's L2 term: the gradient of wd/2 * ||theta||^2 added to the objective's gradient
    return grad + hyper["weight_decay"] * param


def adagrad_step(param, grad, state, hyper, t):
    """Duchi, Hazan & Singer 2011, diagonal AdaGrad (Figure 1 with phi = 0, H_t = delta I + diag(s_t))."""
    g = _coupled_decay(param, grad, hyper)
    if "sum_sq" not in state:
        state["sum_sq"] = np.full_like(param, hyper["initial_accumulator_value"])  # torch: s_0 = tau
    state["sum_sq"] = state["sum_sq"] + g * g  # Fig. 1: ||g_{1:t,i}||^2 = sum_{tau<=t} g_{tau,i}^2
    eta = hyper["lr"] / (1 + (t - 1) * hyper["lr_decay"])  # torch's lr_decay (not in the paper)
    eps = hyper["eps"]
    if hyper["variant"] == "eps_inside":
        root = np.sqrt(state["sum_sq"] + eps)  # Keras: sqrt(accumulator + epsilon)
    else:
        root = eps + np.sqrt(state["sum_sq"])  # Fig. 1: H_{t,ii} = delta + ||g_{1:t,i}||_2
    return param - eta * g / root  # Fig. 1 / eq. (4) with phi = 0: x_{t+1} = x_t - eta H_t^{-1} g_t


def rmsprop_step(param, grad, state, hyper, t):
    """Tieleman & Hinton 2012 (lecture 6e); centred form and momentum as Graves 2013, eqs. (38)-(41)."""
    alpha, eps, lr = hyper["alpha"], hyper["eps"], hyper["lr"]
    momentum, centered = hyper["momentum"], hyper["centered"]
    variant = hyper["variant"]
    g = _coupled_decay(param, grad, hyper)
    n = alpha * state.get("n", np.zeros_like(param)) + (1 - alpha) * g**2  # lecture 6e; Graves eq. (38)
    state["n"] = n
    variance = n
    if centered:
        g_bar = alpha * state.get("g_bar", np.zeros_like(param)) + (1 - alpha) * g  # Graves eq. (39)
        state["g_bar"] = g_bar
        variance = n - g_bar**2  # Graves eq. (40): n_i - g_i^2 under the root
    # torch adds eps after the root; Graves eq. (40) has sqrt(n - g^2 + daleth), as TF's ApplyRMSProp
    denominator = np.sqrt(variance) + eps if variant == "torch" else np.sqrt(variance + eps)
    if variant == "graves":
        # Graves eq. (40): Delta = beth * Delta - gimel * eps_i / sqrt(...); eq. (41): w = w + Delta
        delta = momentum * state.get("delta", np.zeros_like(param)) - lr * g / denominator
        state["delta"] = delta
        return param + delta
    if momentum > 0:
        # torch's heavy-ball buffer over the RMS-scaled gradient, lr applied outside the buffer
        buffer = momentum * state.get("buffer", np.zeros_like(param)) + g / denominator
        state["buffer"] = buffer
        return param - lr * buffer
    return param - lr * g / denominator  # lecture 6e: divide the gradient by sqrt(MeanSquare)


def adadelta_step(param, grad, state, hyper, t):
    """Zeiler 2012, Algorithm 1 (with torch's lr and weight decay where noted)."""
    rho, eps, lr = hyper["rho"], hyper["eps"], hyper["lr"]
    g = _coupled_decay(param, grad, hyper)  # Alg. 1 line 4: compute gradient g_t
    e_g2 = rho * state.get("e_g2", np.zeros_like(param)) + (1 - rho) * g * g  # line 5: accumulate E[g^2]_t
    e_dx2 = state.get("e_dx2", np.zeros_like(param))
    dx = -np.sqrt(e_dx2 + eps) / np.sqrt(e_g2 + eps) * g  # line 6: -RMS[dx]_{t-1} / RMS[g]_t * g_t; eq. (9)
    variant = hyper["variant"]
    if variant == "zeiler":
        assert lr == 1.0  # Algorithm 1 has no learning rate
        step = dx
        accumulated = dx
    elif variant == "scaled_accumulator":
        step = lr * dx
        accumulated = step  # line 7 applied to the step actually taken
    else:
        step = lr * dx  # torch: lr scales the applied step only
        accumulated = dx
    state["e_g2"] = e_g2
    state["e_dx2"] = rho * e_dx2 + (1 - rho) * accumulated * accumulated  # line 7: accumulate E[dx^2]_t
    return param + step  # line 8: x_{t+1} = x_t + dx_t


def adamax_step(param, grad, state, hyper, t):
    """Kingma & Ba 2015, Algorithm 2 (sec. 7.1), with torch's and Keras's eps placements as variants."""
    beta1, beta2 = hyper["betas"]
    lr, eps = hyper["lr"], hyper["eps"]
    variant = hyper["variant"]
    g = _coupled_decay(param, grad, hyper)
    m = beta1 * state.get("m", np.zeros_like(param)) + (1 - beta1) * g  # Alg. 2: m_t
    u_prev = beta2 * state.get("u", np.zeros_like(param))
    # Alg. 2: u_t = max(beta2 * u_{t-1}, |g_t|); torch adds eps to |g_t| inside the max
    u = np.maximum(u_prev, np.abs(g) + eps) if variant == "torch" else np.maximum(u_prev, np.abs(g))
    state["m"], state["u"] = m, u
    denominator = u + eps if variant == "keras" else u  # Keras: (u + epsilon) in the denominator
    return param - (lr / (1 - beta1**t)) * m / denominator  # Alg. 2: theta_t = theta - (a / (1 - b1^t)) m / u
