"""SWATS written from Keskar & Socher 2017, Algorithm 1, over a flat parameter vector."""

import numpy as np


def swats_step(x, g, state, hyper, t):
    """One step k = t of Algorithm 1 over ``x`` (a param group; one tensor for variant "per-tensor").

    Weight decay (coupled L2, added to g before everything) and the "per-tensor" relative switch test
    ``Lambda > 0 and |Lambda - gamma| < switch_rtol |gamma|`` are descentlab's additions.
    """
    beta1, beta2 = hyper["betas"]
    lr, eps = hyper["lr"], hyper["eps"]
    g = g + hyper["weight_decay"] * x
    if state.get("phase") == "SGD":
        state["v"] = beta1 * state["v"] + g  # Alg. 1: v_k = beta1 v_{k-1} + g_k
        return (
            x - (1 - beta1) * state["Lambda"] * state["v"]
        )  # Alg. 1: x_k = x_{k-1} - (1 - beta1) Lambda v_k
    state["m"] = beta1 * state.get("m", np.zeros_like(x)) + (1 - beta1) * g  # m_0 = 0
    state["a"] = beta2 * state.get("a", np.zeros_like(x)) + (1 - beta2) * g * g  # a_0 = 0
    p = -lr * np.sqrt(1 - beta2**t) / (1 - beta1**t) * state["m"] / (np.sqrt(state["a"]) + eps)  # Alg. 1: p_k
    x = x + p
    if p @ g != 0:
        gamma = (p @ p) / (-(p @ g))  # Alg. 1: gamma_k, the projected learning rate
        state["lam"] = beta2 * state.get("lam", 0.0) + (1 - beta2) * gamma  # lambda_0 = 0
        corrected = state["lam"] / (1 - beta2**t)
        if hyper["variant"] == "per-tensor":
            switch = t > 1 and corrected > 0 and abs(corrected - gamma) < hyper["switch_rtol"] * abs(gamma)
        else:
            switch = t > 1 and abs(corrected - gamma) < eps  # Alg. 1: switching condition
        if switch:
            state.update(phase="SGD", Lambda=corrected, switch_step=t, v=np.zeros_like(x))
    return x


def swats_reference(x0, gradient, steps, lr, beta1, beta2, eps, switch_rtol=None):
    """Return (final x, switch step or None, Lambda) of ``steps`` steps of :func:`swats_step`.

    ``switch_rtol=None`` is the paper's absolute switch test, a number the "per-tensor" relative one.
    """
    hyper = {
        "lr": lr,
        "betas": (beta1, beta2),
        "eps": eps,
        "weight_decay": 0.0,
        "variant": "paper" if switch_rtol is None else "per-tensor",
        "switch_rtol": switch_rtol,
    }
    x, state = x0.astype(np.float64).copy(), {}
    for k in range(1, steps + 1):
        x = swats_step(x, gradient(x), state, hyper, k)
    return x, state.get("switch_step"), state.get("Lambda")
