"""Averages of the weights along any optimizer's trajectory: EMA and SWA, kept by an optimizer wrapper."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from descentlab.optim._validation import CLOSED_UNIT_INTERVAL, Choice, Integer, hyperparameter_checks
from descentlab.optim._wrapper import DEFAULT_BASE, OptimizerWrapper, real_view, swapped_in
from descentlab.optim.search_space import Float

AVERAGES = ("ema", "swa")


class WeightAveraging(OptimizerWrapper):
    r"""The base optimizer trains as usual; an average of its weights is kept beside them.

    After step ``average_start`` (before the first step when it is 0) the average is the weights there,
    :math:`a \leftarrow \theta_s` (counted as :math:`n = 1` model), and after every ``average_every``-th
    step :math:`t` beyond it:

    .. math::

        \text{ema:}\quad a &\leftarrow \beta\, a + (1 - \beta)\, \theta_t \\
        \text{swa:}\quad a &\leftarrow \frac{n\, a + \theta_t}{n + 1}, \quad n \leftarrow n + 1

    with :math:`\beta` = ``ema_decay``. SWA is Izmailov et al. 2018, Algorithm 1 (the average starts at
    the pre-trained :math:`\hat w = \theta_s`, cycle length :math:`c` = ``average_every``); the EMA is the
    temporal average of Polyak & Juditsky 1992 in its exponential form (without the bias correction of
    Kingma & Ba 2015, sec. 7.2, which is not needed since :math:`a` starts at :math:`\theta_s`, not 0).
    Both updates run as one ``lerp`` (weights :math:`1 - \beta` and :math:`1 / (n + 1)`).

    ``with optimizer.averaged():`` (also :meth:`at_iterate`, where the lab evaluates) swaps the averages
    into the parameters and restores the live weights bit for bit afterwards. The state (``average``,
    ``average_count``, ``steps``) is in ``state_dict()`` under ``"average_state"``, so a checkpoint of
    the optimizer carries the average. Every parameter of the groups is averaged at every averaging
    step, whether it had a gradient or not (it is a time average of the weights).

    Why an optimizer wrapper and not a separate object like ``torch.optim.swa_utils.AveragedModel``: the
    average then lives where checkpoints and the lab already look (the optimizer's ``state_dict`` and
    its ``at_iterate`` hook), it is updated by the ``step()`` every training loop already calls (no
    second call to forget), and it holds one tensor per parameter, not a copy of the whole module.

    When to use torch's instead: ``AveragedModel`` averages a *module*, buffers included
    (``use_buffers=True``), and gives a model object to evaluate or export while training goes on;
    ``update_bn`` recomputes BatchNorm statistics for the averaged weights. We average parameters only
    and do not duplicate either: for a model with BatchNorm, use ``AveragedModel`` + ``update_bn``
    (or call ``update_bn`` inside ``averaged()``, knowing that the block restores the parameters but not
    the running statistics). ``torch.optim.swa_utils.SWALR`` is a scheduler over ``param_groups`` and
    drives this wrapper as it drives any optimizer. On one trajectory our SWA and EMA equal
    ``AveragedModel``'s (tested) when its ``update_parameters`` is called at :math:`\theta_s` and then
    after every averaging step: its first call copies, as our start does.

    Search space: lr (log, the base's), ema_decay (0.9-0.9999, log1m).

    References:
        Izmailov, Podoprikhin, Garipov, Vetrov & Wilson, "Averaging Weights Leads to Wider Optima and
        Better Generalization", UAI 2018, https://arxiv.org/abs/1803.05407 (Algorithm 1).
        Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM J. Control
        Optim. 1992.
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, sec. 7.2 (temporal
        averaging).
    """

    reference = "Izmailov et al. 2018 (SWA, Alg. 1); Polyak & Juditsky 1992 (EMA)"
    state_key = "average_state"
    form_key = "average"
    search_space = (Float("lr", 1e-5, 10.0, "log"), Float("ema_decay", 0.9, 0.9999, "log1m"))
    hyperparameters = hyperparameter_checks(
        average=Choice(AVERAGES),
        ema_decay=CLOSED_UNIT_INTERVAL,
        average_start=Integer(0),
        average_every=Integer(1),
    )

    def __init__(
        self,
        params: Any,
        base: str | type[Optimizer] = DEFAULT_BASE,
        *,
        average: str = "ema",
        ema_decay: float = 0.999,
        average_start: int = 0,
        average_every: int = 1,
        **base_hyperparameters: Any,
    ) -> None:
        own = dict(
            average=average, ema_decay=ema_decay, average_start=average_start, average_every=average_every
        )
        super().__init__(params, base, own, base_hyperparameters)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step of the base, then the averaging update of every parameter due for one."""
        for group in self.param_groups:
            for param in group["params"]:
                if param not in self.state:
                    self.state[param] = {"steps": 0}
                    if group["average_start"] == 0:
                        self._start(param)
        with torch.enable_grad():
            loss = self.base.step(closure)
        for group in self.param_groups:
            self._average(group)
        return loss

    def _start(self, param: Tensor) -> None:
        self.state[param].update(average=param.detach().clone(), average_count=1)

    def _average(self, group: dict[str, Any]) -> None:
        start, every = group["average_start"], group["average_every"]
        averages, weights, counts = [], [], []
        for param in group["params"]:
            state = self.state[param]
            state["steps"] += 1
            steps = state["steps"]
            if steps == start:
                self._start(param)
            elif steps > start and (steps - start) % every == 0:
                averages.append(real_view(state["average"]))
                weights.append(real_view(param.detach()))
                counts.append(state)
        if not averages:
            return
        if group["average"] == "ema":
            torch._foreach_lerp_(averages, weights, 1.0 - float(group["ema_decay"]))
            for state in counts:
                state["average_count"] += 1
            return
        # SWA: one lerp per count (parameters added to the run later have smaller counts)
        for count in sorted({state["average_count"] for state in counts}):
            chosen = [index for index, state in enumerate(counts) if state["average_count"] == count]
            torch._foreach_lerp_(
                [averages[i] for i in chosen], [weights[i] for i in chosen], 1.0 / (count + 1)
            )
        for state in counts:
            state["average_count"] += 1

    def averaged(self) -> contextlib.AbstractContextManager:
        """A block in which every parameter with an average holds it; the live weights return after."""
        pairs = [(p, self.state[p]["average"]) for p in self.params() if "average" in self.state.get(p, {})]
        return swapped_in(pairs)

    def at_iterate(self) -> contextlib.AbstractContextManager:
        """The lab's evaluation hook: the same block as :meth:`averaged`."""
        return self.averaged()
