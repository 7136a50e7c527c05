"""Schedule-Free SGD and AdamW (Defazio et al., "The Road Less Scheduled", NeurIPS 2024, arXiv:2405.15682).

Float64 loops over the three sequences z (base), x (average) and y (gradient point), written from the
paper and independent of descentlab. Sections, equations and lines are the NeurIPS text's (its arXiv
HTML has the same equation numbers):

- SGD: eqs. (3)-(5) (z_1 = x_1) with the two practical changes of sec. 4.3 ("Implementation
  Concerns"), which the paper says its SGD and AdamW experiments both used: a linear warmup
  gamma_t = gamma min(1, t / T_warmup) (the bias-correction factor there is Adam's, so SGD has none) and
  the averaging weights of eq. (23), c_{t+1} = gamma_t^2 / sum_{i<=t} gamma_i^2. Without warmup these
  give c_{t+1} = 1/t, not the 1/(t+1) written under eq. (5): the paper notes eq. (23) is shifted by one
  (z_1 leaves the average at the first step). Weight decay is taken at y, the paper's choice in the
  same section (an L2 term of the loss, so it enters the gradient).
- AdamW: Algorithm 1 ("Schedule-Free AdamW"), lines 2-11.

The step returns y_{t+1}, where the next gradient is taken (what an optimizer's parameters hold in train
mode); the average x lives in ``state["x"]``.

Options that are not in the paper: the weight of step t generalises gamma_t^2 to t^r gamma_t^p (the
authors' ``r`` and ``weight_lr_power``; r = 0, p = 2 is eq. (23)); the paper only remarks (eq. (20),
related work) that factorial-power weights are compatible with its theory. Variant "authors-code" of
AdamW is the authors' package since v1.3 (the bias correction under the root instead of in gamma_t),
written from its documented rule.
"""

import numpy as np


def _warmup(hyper, t):
    """min(1, t / T_warmup): sec. 4.3 and Algorithm 1, line 8 (no warmup when T_warmup = 0)."""
    warmup = hyper["warmup_steps"]
    return min(1.0, t / warmup) if warmup > 0 else 1.0


def _average_and_interpolate(state, hyper, t, gamma, beta):
    """c_{t+1} and x_{t+1} (eq. (23) and eq. (5); Algorithm 1, lines 10-11), then the next y (eq. (3))."""
    weight = t ** hyper["r"] * gamma ** hyper["weight_lr_power"]
    state["weight_sum"] = state.get("weight_sum", 0.0) + weight
    c = weight / state["weight_sum"] if state["weight_sum"] > 0 else 0.0  # gamma = 0 so far: keep x
    state["x"] = (1.0 - c) * state["x"] + c * state["z"]
    # y_{t+1} = (1 - beta) z_{t+1} + beta x_{t+1}: eq. (3), Algorithm 1 line 5 of the next step
    return (1.0 - beta) * state["z"] + beta * state["x"]


def _start(param, state):
    if "z" not in state:
        # z_1 = x_1 is the starting point (text under eq. (5); Algorithm 1, line 2); y_1 = x_1 too
        state["z"], state["x"] = param.copy(), param.copy()


def schedule_free_sgd_step(param, grad, state, hyper, t):
    """One step of eqs. (3)-(5) with sec. 4.3's warmup, eq. (23)'s weights and decay at y."""
    _start(param, state)
    gamma = hyper["lr"] * _warmup(hyper, t)
    # eq. (4) at y_t = param; the decay is sec. 4.3's L2 term at y, so it joins the gradient
    g = grad + hyper["weight_decay"] * param
    state["z"] = state["z"] - gamma * g
    return _average_and_interpolate(state, hyper, t, gamma, hyper["momentum"])


def schedule_free_adamw_step(param, grad, state, hyper, t):
    """Algorithm 1 (variant "paper") or the authors' v1.3 form ("authors-code")."""
    _start(param, state)
    beta1, beta2 = hyper["betas"]
    # line 6 is the gradient at y_t (param); line 7, v_0 = 0 (line 3):
    state["v"] = beta2 * state.get("v", np.zeros_like(param)) + (1.0 - beta2) * grad**2
    correction = 1.0 - beta2**t
    if hyper["variant"] == "paper":
        # line 8: gamma_t folds Adam's bias correction sqrt(1 - beta2^t) into the step size
        gamma = hyper["lr"] * np.sqrt(correction) * _warmup(hyper, t)
        denominator = np.sqrt(state["v"]) + hyper["eps"]
    else:  # authors-code: v is bias-corrected under the root and gamma_t is the warmup alone
        gamma = hyper["lr"] * _warmup(hyper, t)
        denominator = np.sqrt(state["v"] / correction) + hyper["eps"]
    # line 9: an Adam step on z plus decoupled decay evaluated at y_t, both scaled by gamma_t
    state["z"] = state["z"] - gamma * grad / denominator - gamma * hyper["weight_decay"] * param
    return _average_and_interpolate(state, hyper, t, gamma, beta1)
