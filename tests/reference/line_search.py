"""Line searches along d = -grad f, written from Nocedal & Wright 2006 (Alg. 3.1) and Prince, UDL fig. 6.10.

``h(alpha) = f(x + alpha d)`` is given as a function, so nothing here shares code with descentlab.
"""

import math

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # UDL fig. 6.10: each reduction keeps this fraction of [a, d]


def backtracking(h, h0, slope, alpha0, c1, rho, max_evaluations):
    """N&W Algorithm 3.1: alpha <- rho alpha until h(alpha) <= h(0) + c1 alpha h'(0); 0 if none passes."""
    alpha = alpha0
    for _ in range(max_evaluations):
        if h(alpha) <= h0 + c1 * alpha * slope:  # sufficient decrease (N&W eq. 3.4)
            return alpha
        alpha *= rho
    return 0.0


def golden_section(h, alpha0, tolerance, max_reductions, max_expansions):
    """UDL fig. 6.10 on [0, alpha0]: the midpoint of the last bracket [a, d].

    descentlab's documented addition first: while h(d) < h(GOLDEN d) the minimum lies beyond d and the
    bracket becomes [GOLDEN d, 2 d], at most ``max_expansions`` times.
    """
    a, d = 0.0, alpha0
    for _ in range(max_expansions):
        if not h(d) < h(GOLDEN * d):
            break
        a, d = GOLDEN * d, 2.0 * d
    b, c = d - GOLDEN * (d - a), a + GOLDEN * (d - a)  # the two interior points, b < c
    h_b, h_c = h(b), h(c)
    for _ in range(max_reductions):
        if not d - a > tolerance:
            break
        if h_b < h_c:  # fig. 6.10: the minimum is not in [c, d]; drop it, c becomes the old b
            d, c, h_c = c, b, h_b
            b = d - GOLDEN * (d - a)
            h_b = h(b)
        else:  # drop [a, b]; b becomes the old c
            a, b, h_b = b, c, h_c
            c = a + GOLDEN * (d - a)
            h_c = h(c)
    return 0.5 * (a + d)


def line_search_gd_step(x, oracle, state, hyper, t):
    """x <- x + alpha* d, d = -grad f(x), alpha* by ``hyper["method"]`` from the first trial lr * max_step."""
    g = oracle.gradient(x)
    d = -g
    slope = float(-(d @ d))  # h'(0) = grad f^T d
    alpha0 = hyper["lr"] * hyper["max_step"]

    def h(alpha):
        return oracle.value(x + alpha * d)

    if slope == 0.0 or alpha0 == 0.0:
        return x
    if hyper["method"] == "golden":
        alpha = golden_section(
            h, alpha0, hyper["tolerance"], hyper["max_evaluations"], hyper["max_expansions"]
        )
    elif hyper["method"] == "armijo":
        alpha = backtracking(
            h, oracle.value(x), slope, alpha0, hyper["c1"], hyper["shrink"], hyper["max_evaluations"]
        )
    else:
        raise NotImplementedError(f"no reference for method {hyper['method']!r}")
    return x + alpha * d
