"""Lookahead (Zhang et al. 2019, Alg. 1), SAM / ASAM (Foret et al. 2021, Alg. 1; Kwon et al. 2021, Alg. 1)
and weight averages (Izmailov et al. 2018, Alg. 1; EMA), as float64 loops written from the papers.

The base optimizer of a wrapper is another reference step function (``base_step``), so these oracles
share nothing with descentlab but the problem.
"""

import numpy as np

# After how many fast steps each form of Lookahead takes its slow weights (0: before the first step).
LOOKAHEAD_ANCHORS = {"paper": lambda k: 0, "timm": lambda k: k, "torch-optimizer": lambda k: 1}


def lookahead(base_step):
    """A per-tensor step: Algorithm 1 of Zhang et al. 2019 around ``base_step`` (the optimizer A)."""

    def step(param, grad, state, hyper, t):
        k, alpha = hyper["lookahead_k"], hyper["lookahead_alpha"]
        anchor = LOOKAHEAD_ANCHORS[hyper["lookahead_variant"]](k)
        if anchor == 0 and "phi" not in state:
            state["phi"] = param.copy()  # Require: initial parameters phi_0 (theta_{1,0} = phi_0)
        # inner loop: theta_{t,i} <- theta_{t,i-1} + A(L, theta_{t,i-1}, d); A keeps its own state
        theta = base_step(param, grad, state.setdefault("base", {}), hyper, t)
        if t == anchor:  # timm / torch-optimizer: the slow weights start here, this sync moves nothing
            state["phi"] = theta.copy()
        elif t > anchor and (t - anchor) % k == 0:
            state["phi"] = state["phi"] + alpha * (theta - state["phi"])  # outer update phi_t
            theta = state["phi"].copy()  # synchronize: theta_{t+1,0} <- phi_t
        return theta

    return step


def sam_run(gradient, initial, group_indices, group_hypers, base_step, steps, maximize=False):
    """SAM / ASAM (Foret et al. 2021, Alg. 1; Kwon et al. 2021, Alg. 1) over all parameters jointly.

    ``gradient`` maps the list of all parameters to their gradients (one minibatch: the same function
    at w and at w + eps). One epsilon for the whole model: the norm runs over every parameter; each
    group has its own rho. ``base_step`` (a per-tensor reference) then steps from w with the gradient
    at w + eps. Returns the parameters after ``steps`` steps.
    """
    params = [np.array(p, dtype=np.float64) for p in initial]
    hyper_of = {i: hyper for indices, hyper in zip(group_indices, group_hypers) for i in indices}
    states = [{} for _ in params]
    sign = -1.0 if maximize else 1.0
    for t in range(1, steps + 1):
        g = gradient(params)  # Alg. 1: gradient of the batch's training loss at w
        scale = []  # T_w: 1 for SAM, |w| + eta for element-wise ASAM (Kwon et al., T_w = diag(|w|) + eta I)
        for i, p in enumerate(params):
            hyper = hyper_of[i]
            scale.append(np.abs(p) + hyper["sam_eta"] if hyper["sam_variant"] == "asam" else np.ones_like(p))
        norm = np.sqrt(sum(float(np.sum((s * gi) ** 2)) for s, gi in zip(scale, g)))  # ||T_w g||_2
        # eq. 2 with p = q = 2: eps = rho T_w^2 g / ||T_w g|| (ASAM), rho g / ||g|| (SAM)
        eps = [
            sign * hyper_of[i]["sam_rho"] * s * s * gi / norm if norm > 0 else np.zeros_like(gi)
            for i, (s, gi) in enumerate(zip(scale, g))
        ]
        g_sam = gradient([p + e for p, e in zip(params, eps)])  # eq. 3: the gradient at w + eps
        params = [base_step(p, gi, states[i], hyper_of[i], t) for i, (p, gi) in enumerate(zip(params, g_sam))]
    return params


def averaged_run(gradient, initial, hyper, base_step, steps):
    """Weights and their average after ``steps`` steps of ``base_step`` (one group, per-tensor base).

    SWA: Izmailov et al. 2018, Algorithm 1 with w_hat = the weights after ``average_start`` steps and
    cycle length c = ``average_every``: w_SWA <- (w_SWA n_models + w) / (n_models + 1). EMA: a <- beta a
    + (1 - beta) w at the same steps, from the same start.
    """
    params = [np.array(p, dtype=np.float64) for p in initial]
    states = [{} for _ in params]
    start, every = hyper["average_start"], hyper["average_every"]
    average, n_models = None, 0
    if start == 0:
        average, n_models = [p.copy() for p in params], 1  # w_SWA <- w (w = w_hat)
    for t in range(1, steps + 1):
        g = gradient(params)
        params = [base_step(p, gi, states[i], hyper, t) for i, (p, gi) in enumerate(zip(params, g))]
        if t == start:
            average, n_models = [p.copy() for p in params], 1
        elif t > start and (t - start) % every == 0:  # mod(i, c) = 0, counted from the start
            if hyper["average"] == "swa":
                average = [(a * n_models + p) / (n_models + 1) for a, p in zip(average, params)]
            else:
                beta = hyper["ema_decay"]
                average = [beta * a + (1.0 - beta) * p for a, p in zip(average, params)]
            n_models += 1
    return params, average
