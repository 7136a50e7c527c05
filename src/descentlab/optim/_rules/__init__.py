"""Update rules: small multi-tensor transforms that algorithms compose.

Each function works on aligned lists of tensors (one entry per parameter) with ``torch._foreach_*``
kernels. A trailing underscore means the function updates its first argument in place; the others return
new lists. Rules know nothing about param groups, closures or schedulers; the declared transforms of
:mod:`descentlab.optim._transforms` compose them, and the engine runs the transforms.
"""

from descentlab.optim._rules.moments import (
    accumulate_squares_,
    ema_,
    ema_of_squares_,
    lerp_,
    running_max_,
    trace_,
)
from descentlab.optim._rules.scalars import (
    add_scalar,
    add_scalar_,
    increment_counts_,
    norms,
    per_tensor,
    scalar_operand,
)
from descentlab.optim._rules.scaling import (
    bias_correction,
    nonvanishing_eps,
    plus_eps,
    root_plus_eps,
    root_with_eps_inside,
    square_root,
)
from descentlab.optim._rules.weight_decay import add_decayed_weights, decay_weights_

__all__ = [
    "accumulate_squares_",
    "add_decayed_weights",
    "add_scalar",
    "add_scalar_",
    "bias_correction",
    "decay_weights_",
    "ema_",
    "ema_of_squares_",
    "increment_counts_",
    "lerp_",
    "nonvanishing_eps",
    "norms",
    "per_tensor",
    "plus_eps",
    "root_plus_eps",
    "root_with_eps_inside",
    "running_max_",
    "scalar_operand",
    "square_root",
    "trace_",
]
