"""SVRG written from Johnson & Zhang 2013, Figure 1 (Procedure SVRG), for least squares."""

import numpy as np


def svrg_least_squares(X, y, w0, lr, m, batches):
    """Option I over the given minibatch index sequence; a new snapshot every ``m`` inner steps."""

    def grad(w, idx):  # gradient of psi_i(w) = 0.5 (x_i.w - y_i)^2, averaged over idx
        return X[idx].T @ (X[idx] @ w - y[idx]) / len(idx)

    w = w0.astype(np.float64).copy()
    all_rows = np.arange(len(y))
    for t, idx in enumerate(batches):
        if t % m == 0:
            w_snap = w.copy()  # w~ = w~_{s-1}; Option I: w~_s = w_m (the last iterate)
            mu = grad(w_snap, all_rows)  # mu~ = (1/n) sum_i grad psi_i(w~)
        w = w - lr * (grad(w, idx) - grad(w_snap, idx) + mu)  # w_t = w_{t-1} - eta (...)
    return w
