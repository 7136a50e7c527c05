"""Learning-rate and hyperparameter schedules that work with any ``torch.optim`` optimizer.

Two layers:

1. **Schedules** -- small frozen dataclasses, ``schedule(step) -> float``, each a closed-form function
   of the step (:mod:`~descentlab.schedules.functions`, :mod:`~descentlab.schedules.one_cycle`), composed
   with :class:`Warmup`, :class:`Sequence` and :func:`wsd` (:mod:`~descentlab.schedules.composition`),
   plus performance scheduling that listens to a metric (:class:`Plateau`). Their value at step 0 is 1 by
   default: a multiplier of each param group's initial value.
2. **Schedulers** -- :class:`ScheduledLR` and :class:`HyperparameterScheduler`, real
   ``torch.optim.lr_scheduler.LRScheduler`` subclasses that write schedule values into param groups,
   step per batch or per epoch (see :mod:`~descentlab.schedules.scheduler`), and save/resume exactly.

Example (warm-up then cosine, in one line)::

    scheduler = ScheduledLR(optimizer, Warmup("linear", 500, then=Cosine(9_500, final=0.01)))
    for batch in batches:
        ...; optimizer.step(); scheduler.step()

:func:`plot` draws schedules for a quick look.
"""

from descentlab.schedules.base import Schedule
from descentlab.schedules.composition import Sequence, Warmup, wsd
from descentlab.schedules.functions import (
    Constant,
    Cosine,
    CosineRestarts,
    Exponential,
    OneMinusSqrt,
    PiecewiseConstant,
    Polynomial,
    Power,
    linear,
)
from descentlab.schedules.hyperparameter import HyperparameterKey, momentum_key
from descentlab.schedules.one_cycle import OneCycle, one_cycle, one_cycle_momentum
from descentlab.schedules.performance import Plateau, PlateauState
from descentlab.schedules.plotting import plot
from descentlab.schedules.scheduler import HyperparameterScheduler, ScheduledLR

__all__ = [
    "Constant",
    "Cosine",
    "CosineRestarts",
    "Exponential",
    "HyperparameterKey",
    "HyperparameterScheduler",
    "OneCycle",
    "OneMinusSqrt",
    "PiecewiseConstant",
    "Plateau",
    "PlateauState",
    "Polynomial",
    "Power",
    "Schedule",
    "ScheduledLR",
    "Sequence",
    "Warmup",
    "linear",
    "momentum_key",
    "one_cycle",
    "one_cycle_momentum",
    "plot",
    "wsd",
]
