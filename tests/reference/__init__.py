"""Float64 reference implementations written from the papers: test oracles, never library code.

Each module implements one algorithm family as per-parameter step functions over NumPy float64 arrays,
following the paper's equations (cited in comments), independently of descentlab's rules and of torch.
A step function has the signature ``step(param, grad, state, hyper, t) -> new_param`` where ``state`` is
a dict the function owns and ``t`` is the 1-based step count.
"""
