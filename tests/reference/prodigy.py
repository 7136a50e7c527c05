"""Prodigy written from Mishchenko & Defazio, ICML 2024 (arXiv:2306.06101), over the flat float64 vector
of one param group, with the authors' code's departures (prodigyopt 1.1.2) behind the hyperparameters
that select them.

The paper's algorithm is "Prodigy (Adam version)" of the section "Deriving Adam-Like Step Sizes" (sec. 5
of v4): Algorithm 4 in arXiv v3, which also has a D-Adaptation-with-resetting section; v4 and the ICML
text, without that section, number it Algorithm 3. Per step k, from r_0 = 0, s_0 = 0, m_0 = v_0 = 0 and
the given d_0: Adam's two moments of d_k g_k; two exponential averages at rate sqrt(beta2), r of
gamma_k d_k^2 <g_k, x_0 - x_k> and s of gamma_k d_k^2 g_k, each new term times 1 - sqrt(beta2); the
estimate d_hat = r / ||s||_1; d_{k+1} the larger of d_k and d_hat; and an Adam step of length
gamma_k d_k with d_k eps added to sqrt(v).
"""

import math

import numpy as np


def _statistics_mask(oracle, hyper):
    """Which entries enter r and s: every ``slice_p``-th entry of each tensor of the group (authors)."""
    sizes = [oracle.start[i].size for i in oracle.indices]
    return np.concatenate([np.arange(size) % hyper["slice_p"] == 0 for size in sizes])


def _next_d(state, d_hat, hyper):
    """d_{k+1} = max(d_k, d_hat_{k+1}) (the paper's Adam version); or the authors' growth-limited rule."""
    d = state["d"]
    if hyper["variant"] == "paper":
        return max(d, d_hat)
    if d == hyper["d0"]:  # authors: the first increase from d0 is not limited by growth_rate
        d = max(d, d_hat)
    state["d_max"] = max(state["d_max"], d_hat)
    growth_rate = math.inf if hyper["growth_rate"] is None else hyper["growth_rate"]  # None: the authors' inf
    return min(state["d_max"], d * growth_rate)


def prodigy_step(x, oracle, state, hyper, t):
    """One step of the paper's Adam version over ``x`` (one param group), k = steps taken so far.

    The paper's r and s carry the factor (1 - sqrt(beta2)) and no 1/d0 (the authors' code drops the
    first and adds the second; both cancel in d_hat). Not in the paper, from the authors' code:
    beta3 (default sqrt(beta2)), d_coef, growth_rate, use_bias_correction, safeguard_warmup, slice_p,
    weight decay (coupled, or decoupled by gamma d bc lambda), and variant "authors" using d_{k+1} in
    the denominator's eps (and in the beta1 = 0 step).
    """
    beta1, beta2 = hyper["betas"]
    beta3 = math.sqrt(beta2) if hyper["beta3"] is None else hyper["beta3"]
    gamma, eps, wd = float(hyper["lr"]), hyper["eps"], hyper["weight_decay"]
    if not state:  # the algorithm's start: r_0 = 0, s_0 = 0, m_0 = v_0 = 0, d_0 given, x_0 kept
        mask = _statistics_mask(oracle, hyper)
        state.update(x0=x.copy(), r=0.0, s=np.zeros(int(mask.sum())), m=np.zeros_like(x), v=np.zeros_like(x))
        state.update(d=hyper["d0"], d_max=hyper["d0"], k=0, mask=mask)
    g = oracle.gradient(x)  # g_k at x_k
    if not hyper["decoupled_weight_decay"]:
        g = g + wd * x
    d, k, mask = state["d"], state["k"], state["mask"]
    bc = math.sqrt(1 - beta2 ** (k + 1)) / (1 - beta1 ** (k + 1)) if hyper["use_bias_correction"] else 1.0
    # Adam's moments of d_k g_k, not of g_k: m and v carry the scale of a step
    state["m"] = beta1 * state["m"] + (1 - beta1) * d * g  # m_{k+1}
    state["v"] = beta2 * state["v"] + (1 - beta2) * d * d * g * g  # v_{k+1}
    weight = gamma * d * d * bc  # the gamma_k d_k^2 of r and s (bc: the authors' option)
    s_weight = d * d if hyper["safeguard_warmup"] else weight
    # r_{k+1} and s_{k+1}: the paper's rate is sqrt(beta2), the beta3 default
    r = beta3 * state["r"] + (1 - beta3) * weight * (g[mask] @ (state["x0"] - x)[mask])
    state["s"] = beta3 * state["s"] + (1 - beta3) * s_weight * g[mask]
    norm = np.abs(state["s"]).sum()
    if norm == 0.0:  # d_hat would be 0/0, which the paper leaves open: the authors' code skips the step
        return x
    state["r"], state["k"] = r, k + 1
    d_hat = hyper["d_coef"] * r / norm  # d_hat_{k+1} = r_{k+1} / ||s_{k+1}||_1 (d_coef: authors)
    state["d"] = _next_d(state, d_hat, hyper)
    eps_d = d if hyper["variant"] == "paper" else state["d"]
    step = gamma * d * bc
    numerator = state["m"] if beta1 > 0 else eps_d * g
    # x_{k+1} = x_k - gamma_k d_k m_{k+1} / (sqrt(v_{k+1}) + d_k eps); the authors add d_{k+1} eps
    new_x = x - step * numerator / (np.sqrt(state["v"]) + eps_d * eps)
    if hyper["decoupled_weight_decay"]:
        new_x = new_x - step * wd * x
    return new_x
