"""SGD with momentum: Robbins & Monro 1951, Polyak 1964, Sutskever et al. 2013 (eqs. 1-4), torch's form."""

import numpy as np


def sgd_step(param, grad, state, hyper, t):
    """torch.optim.SGD's documented algorithm, written from its pseudocode and Sutskever et al. 2013."""
    g = grad + hyper["weight_decay"] * param
    mu = hyper["momentum"]
    if mu != 0.0:
        if hyper["variant"] == "ema":
            # Prince, UDL eq. 6.11: m <- beta m + (1 - beta) g, from m = 0.
            state["b"] = mu * state.get("b", np.zeros_like(param)) + (1.0 - mu) * g
            d = (1.0 - mu) * g + mu * state["b"] if hyper["nesterov"] else state["b"]
        else:
            if "b" not in state:
                state["b"] = g.copy()  # first step: b_1 = g_1
            else:
                state["b"] = mu * state["b"] + (1.0 - hyper["dampening"]) * g
            d = g + mu * state["b"] if hyper["nesterov"] else state["b"]
    else:
        d = g
    return param - hyper["lr"] * d
