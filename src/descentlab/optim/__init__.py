"""Drop-in ``torch.optim.Optimizer`` classes built from small multi-tensor update rules.

Classes torch also has keep torch's constructor, defaults and state keys (a torch ``state_dict`` loads
into ours and back); a ``variant=`` argument reproduces the published forms where they differ.
"""

from descentlab.optim._engine import Direction, RuleOptimizer
from descentlab.optim.adam import Adam, AdamW
from descentlab.optim.lion import Lion
from descentlab.optim.momentum import Momentum, Nesterov
from descentlab.optim.normalized_gd import NormalizedGD
from descentlab.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Direction",
    "Lion",
    "Momentum",
    "Nesterov",
    "NormalizedGD",
    "RuleOptimizer",
]
