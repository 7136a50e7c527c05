"""Muon written from Keller Jordan's post (kellerjordan.github.io/posts/muon, 2024), in float64 NumPy.

The post's algorithm (its "Definition" and the Newton–Schulz section, with Nesterov momentum as in its
code listing): for a matrix parameter with gradient G_t,

    B_t = mu B_{t-1} + G_t                       (heavy-ball sum; Nesterov: U_t = G_t + mu B_t, else B_t)
    X_0 = U_t / ||U_t||_F                        (so the spectral norm is <= 1; transposed when tall)
    X_{k+1} = a X_k + b (X_k X_k^T) X_k + c (X_k X_k^T)^2 X_k,   (a, b, c) = (3.4445, -4.7750, 2.0315)
    theta_t = theta_{t-1} - lr * s * X_K        (s = sqrt(max(1, rows/cols)), the shape factor of the
                                                 reference code; Moonshot's 0.2 sqrt(max(rows, cols)))

with decoupled weight decay theta <- (1 - lr wd) theta first (Liu et al. 2025, "Muon is Scalable for LLM
Training", eq. 3). The post computes the iteration in bfloat16; this oracle computes it in float64 (the
bfloat16 path is checked against :func:`newton_schulz_bf16`). Parameters that are not matrices take the
AdamW step of :func:`reference.adam.adam_step` (Loshchilov & Hutter 2019, Algorithm 2).
"""

import math

import numpy as np
import torch

from reference.adam import adam_step


def newton_schulz(u, coefficients, steps, eps):
    """The post's quintic iteration on the matrix ``u``, in float64 (norm floored at ``eps``)."""
    a, b, c = coefficients
    x = u.T if u.shape[0] > u.shape[1] else u
    x = x / max(np.linalg.norm(x), eps)
    for _ in range(steps):
        gram = x @ x.T  # the post's listing: A = X X^T, B = b A + c A A, X = a X + B X
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if u.shape[0] > u.shape[1] else x


def shape_factor(adjust_lr_fn, rows, cols):
    """sqrt(max(1, rows / cols)) (reference code), or 0.2 sqrt(max(rows, cols)) (Liu et al. 2025, 2.2)."""
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1.0, rows / cols))


def muon_matrix_step(param, grad, state, hyper, t):
    """One Muon step of a matrix ``param`` (2-D; other shapes are viewed as ``shape[0]`` rows)."""
    mu, lr, wd = hyper["momentum"], float(hyper["lr"]), hyper["weight_decay"]
    shape = param.shape
    g = grad.reshape(shape[0], -1)
    state["B"] = mu * state.get("B", np.zeros_like(g)) + g  # the post: B_t = mu B_{t-1} + G_t
    u = g + mu * state["B"] if hyper["nesterov"] else state["B"]
    x = newton_schulz(u, hyper["ns_coefficients"], hyper["ns_steps"], hyper["eps"])
    scale = shape_factor(hyper["adjust_lr_fn"], *g.shape)
    return (1.0 - lr * wd) * param - lr * scale * x.reshape(shape)


def _adamw_hyper(hyper):
    return {
        "lr": hyper["lr"],
        "betas": hyper["adam_betas"],
        "eps": hyper["adam_eps"],
        "weight_decay": hyper["weight_decay"],
        "amsgrad": False,
        "decoupled_weight_decay": True,
        "variant": "torch",
    }


def muon_step(param, grad, state, hyper, t):
    """Muon for a matrix (``use_muon`` None: >= 2 dimensions, or True), AdamW for anything else."""
    matrix = param.ndim >= 2 if hyper["use_muon"] is None else hyper["use_muon"]
    if matrix:
        return muon_matrix_step(param, grad, state, hyper, t)
    return adam_step(param, grad, state, _adamw_hyper(hyper), t)


def muon_step_with_shapes(shapes):
    """:func:`muon_step` for a harness that passes flat tensors: ``shapes`` maps a size to its shape."""

    def step(param, grad, state, hyper, t):
        shape = shapes.get(param.size, param.shape)
        return muon_step(param.reshape(shape), grad.reshape(shape), state, hyper, t).reshape(param.shape)

    return step


def newton_schulz_bf16(u, coefficients, steps, eps):
    """The post's code listing (``zeropower_via_newtonschulz5``) in bfloat16, operation by operation."""
    a, b, c = coefficients
    x = u.bfloat16()
    tall = u.size(0) > u.size(1)
    x = x.T if tall else x
    x = x / (x.norm() + eps)
    for _ in range(steps):
        gram = x @ x.T
        update = b * gram + c * gram @ gram
        x = a * x + update @ x
    return x.T if tall else x


def muon_bf16_step(param, grad, buffer, hyper):
    """The post's step in torch with the bfloat16 iteration (the reference code's order of operations):
    EMA momentum ``B <- B + (1 - mu)(G - B)`` (lerp), Nesterov ``G + mu (B - G)``, shape factor multiplied
    into the bfloat16 update, then ``theta <- (1 - lr wd) theta - lr * update``. Updates ``param`` and
    ``buffer`` in place."""
    mu, lr, wd = hyper["momentum"], float(hyper["lr"]), hyper["weight_decay"]
    buffer.lerp_(grad, 1 - mu)
    u = grad.lerp(buffer, mu) if hyper["nesterov"] else buffer
    x = newton_schulz_bf16(u, hyper["ns_coefficients"], hyper["ns_steps"], hyper["eps"])
    x = x * max(1, grad.size(-2) / grad.size(-1)) ** 0.5
    with torch.no_grad():
        param.mul_(1 - lr * wd)
        param.add_(x, alpha=-lr)
