"""SWATS written from Keskar & Socher 2017, Algorithm 1, over the flat parameter vector."""

import numpy as np


def swats_reference(x0, gradient, steps, lr, beta1, beta2, eps, switch_test=None):
    """Return (final x, switch step or None, Lambda) following Algorithm 1 line by line."""
    x = x0.astype(np.float64).copy()
    m, a, v = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    lam, phase, Lambda, switch_step = 0.0, "Adam", None, None
    for k in range(1, steps + 1):
        g = gradient(x)
        if phase == "SGD":
            v = beta1 * v + g  # Alg. 1: v_k = beta1 v_{k-1} + g_k
            x = x - (1 - beta1) * Lambda * v  # Alg. 1: x_k = x_{k-1} - (1 - beta1) Lambda v_k
            continue
        m = beta1 * m + (1 - beta1) * g
        a = beta2 * a + (1 - beta2) * g * g
        p = -lr * np.sqrt(1 - beta2**k) / (1 - beta1**k) * m / (np.sqrt(a) + eps)  # Alg. 1: p_k
        x = x + p
        if p @ g != 0:
            gamma = (p @ p) / (-(p @ g))  # Alg. 1: gamma_k, the projected learning rate
            lam = beta2 * lam + (1 - beta2) * gamma
            corrected = lam / (1 - beta2**k)
            paper_test = k > 1 and abs(corrected - gamma) < eps  # Alg. 1: switching condition
            if switch_test(k, corrected, gamma) if switch_test else paper_test:
                phase, Lambda, switch_step = "SGD", lam / (1 - beta2**k), k
                v = np.zeros_like(x)
    return x, switch_step, Lambda
