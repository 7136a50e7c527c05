"""Float64 reference implementations written from the papers: test oracles, never library code.

Each module implements one algorithm family over NumPy float64 arrays, following the paper's equations
(cited in comments), independently of descentlab's rules and of torch. A per-tensor step function has the
signature ``step(param, grad, state, hyper, t) -> new_param``; a whole-vector one (an update over all
parameters of a group: dot products, Hessians, line searches, snapshots) has
``step(x, oracle, state, hyper, t) -> new_x`` where ``oracle`` gives ``value``, ``gradient``,
``batch_gradient`` and ``hessian`` at any ``x``. ``state`` is a dict the function owns and ``t`` is the
1-based step count.

A reference reads every hyperparameter as ``hyper[key]`` and never supplies a default: the tests pass
each one explicitly from the case (the row's values over the documented defaults written in the test),
so a wrong library default cannot hide behind the same default in the oracle.
"""
