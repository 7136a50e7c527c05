"""SVRG written from Johnson & Zhang 2013, Figure 1 (Procedure SVRG, Option I)."""

import numpy as np


def svrg_update(w, batch_gradient, full_gradient, state, hyper, t):
    """Inner step t (1-based, counted over all epochs); a new snapshot every ``snapshot_every`` steps.

    ``batch_gradient(v)`` is grad psi_{i_t}(v) for this step's minibatch, ``full_gradient(v)`` grad F(v).
    Weight decay (coupled L2 on the corrected gradient) is descentlab's addition.
    """
    if (t - 1) % hyper["snapshot_every"] == 0:
        state["snapshot"] = w.copy()  # w~ = w~_{s-1}; Option I: w~_s = w_m (the last iterate)
        state["mu"] = full_gradient(w)  # mu~ = (1/n) sum_i grad psi_i(w~)
    corrected = batch_gradient(w) - batch_gradient(state["snapshot"]) + state["mu"]
    return w - hyper["lr"] * (corrected + hyper["weight_decay"] * w)  # w_t = w_{t-1} - eta (...)


def svrg_step(w, oracle, state, hyper, t):
    """:func:`svrg_update` with the contract problems' minibatch and full gradients (whole-vector form)."""
    return svrg_update(w, oracle.batch_gradient, oracle.gradient, state, hyper, t)


def svrg_least_squares(X, y, w0, lr, m, batches):
    """Option I for least squares over the given minibatch index sequence."""

    def grad(w, idx):  # gradient of psi_i(w) = 0.5 (x_i.w - y_i)^2, averaged over idx
        return X[idx].T @ (X[idx] @ w - y[idx]) / len(idx)

    w, state = w0.astype(np.float64).copy(), {}
    hyper = {"lr": lr, "snapshot_every": m, "weight_decay": 0.0}
    all_rows = np.arange(len(y))
    for t, idx in enumerate(batches, start=1):
        w = svrg_update(w, lambda v, idx=idx: grad(v, idx), lambda v: grad(v, all_rows), state, hyper, t)
    return w
