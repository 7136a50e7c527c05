"""Drop-in ``torch.optim.Optimizer`` classes, each a short chain of declared transforms.

Classes torch also has keep torch's constructor, defaults and state keys (a torch ``state_dict`` loads
into ours and back); a ``variant=`` argument reproduces the published forms where they differ.
"""

from descentlab.optim._engine import Direction, RuleOptimizer
from descentlab.optim.adadelta import Adadelta
from descentlab.optim.adafactor import Adafactor
from descentlab.optim.adagrad import Adagrad
from descentlab.optim.adam import Adam, AdamW
from descentlab.optim.adamax import Adamax
from descentlab.optim.line_search import LineSearchGD
from descentlab.optim.lion import Lion
from descentlab.optim.lookahead import Lookahead
from descentlab.optim.momentum import Momentum, Nesterov
from descentlab.optim.muon import Muon
from descentlab.optim.nadam import NAdam
from descentlab.optim.newton import Newton
from descentlab.optim.normalized_gd import NormalizedGD
from descentlab.optim.prodigy import Prodigy
from descentlab.optim.radam import RAdam
from descentlab.optim.rmsprop import RMSprop
from descentlab.optim.sam import SAM
from descentlab.optim.schedule_free import ScheduleFreeAdamW, ScheduleFreeSGD
from descentlab.optim.sgd import SGD
from descentlab.optim.svrg import SVRG, train_svrg
from descentlab.optim.swats import SWATS
from descentlab.optim.trust_ratio import LAMB, LARS
from descentlab.optim.weight_averaging import WeightAveraging

__all__ = [
    "LAMB",
    "LARS",
    "SAM",
    "SGD",
    "SVRG",
    "SWATS",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Direction",
    "LineSearchGD",
    "Lion",
    "Lookahead",
    "Momentum",
    "Muon",
    "NAdam",
    "Nesterov",
    "Newton",
    "NormalizedGD",
    "Prodigy",
    "RAdam",
    "RMSprop",
    "RuleOptimizer",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "WeightAveraging",
    "train_svrg",
]
