"""Thin ``torch.optim.lr_scheduler.LRScheduler`` classes that apply schedules to param groups.

How to step (the one thing to get right with any scheduler):

- **per batch** (Hugging Face ``Trainer(..., optimizers=(optimizer, scheduler))``, Lightning
  ``"interval": "step"``, most transformer recipes): call ``scheduler.step()`` after every
  ``optimizer.step()``; the schedule's step is the optimizer step.
- **per epoch** (Lightning's default ``"interval": "epoch"``, classic CNN recipes): call
  ``scheduler.step()`` once at the end of each epoch; the schedule's step is the epoch.

Performance scheduling needs a metric: call ``scheduler.step(metric)``. The metric is reported at the
step that just finished, then the scheduler advances, so a reduction takes effect from the next step.
Steps without a metric are fine (e.g. per-batch stepping with an evaluation every epoch). In Lightning,
return ``{"scheduler": s, "interval": "epoch", "monitor": "val_loss", "reduce_on_plateau": True}`` from
``configure_optimizers`` and Lightning calls ``s.step(metric)``. The first argument of ``step`` is the
metric, not torch's deprecated ``epoch``. The schedulers also work inside torch's ``SequentialLR`` and
``ChainedScheduler``, though :class:`~descentlab.schedules.composition.Sequence` says the same in one
object.

Saving and resuming: the scheduler's ``state_dict`` holds the step counter, the base values and the
mutable state of metric-driven schedules as plain numbers (no lambdas, no schedule objects), so it
pickles and ``torch.save``-s. Building a new optimizer and scheduler, loading both state dicts (in either
order) and continuing gives exactly the values of an uninterrupted run: loading re-applies the values of
the saved step to the param groups.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from descentlab.schedules.base import MAX_STEPS, Schedule
from descentlab.schedules.hyperparameter import HyperparameterKey


class HyperparameterScheduler(LRScheduler):
    """Drive any param-group values (``lr``, ``momentum``, ``betas[0]``, ``weight_decay``, ``eps``, ...)
    by schedules, one scheduler for all of them.

    At step ``t`` it sets, for every key and every param group ``g``,

    - ``g[key] = schedule(t) * g["initial_<key>"]`` when ``key`` is in ``relative`` (the schedule is a
      multiplier of each group's starting value, so groups with different learning rates keep their
      ratios), or
    - ``g[key] = schedule(t)`` otherwise (the schedule is the value itself, the same for all groups).

    By default only ``"lr"`` is relative; momentum, betas, weight decay and eps are absolute.
    A group with an ``lr_scale`` entry (layer-wise lr decay from :func:`descentlab.create_optimizer` or
    timm's ``param_groups_layer_decay``) gets ``lr`` times its ``lr_scale``, as timm's schedulers do;
    ``initial_lr`` is then the unscaled base. torch's own schedulers ignore ``lr_scale``.
    The starting value of a relative key is remembered in the group as ``initial_<key>`` (``initial_lr``
    for the learning rate, as torch does) the first time a scheduler sees the group; when the group has
    none yet (a fresh optimizer, also with ``last_epoch != -1``) its current value is taken, so there is
    no ``initial_lr`` ``KeyError``.

    Args:
        optimizer: any ``torch.optim.Optimizer`` (descentlab's or torch's).
        schedules: ``{key: schedule}``; keys are param-group entries, ``name[i]`` for tuple elements.
            Each schedule is deep-copied, so metric state is never shared between schedulers.
        relative: keys applied as multipliers of each group's starting value.
        last_epoch: torch's convention: ``-1`` starts at step 0; ``n`` resumes so the first value set is
            the one of step ``n + 1``. Prefer ``load_state_dict`` to resume.

    Example:
        >>> model = torch.nn.Linear(2, 1)
        >>> optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        >>> from descentlab.schedules import one_cycle, one_cycle_momentum
        >>> scheduler = HyperparameterScheduler(
        ...     optimizer, {"lr": one_cycle(100), "betas[0]": one_cycle_momentum(100)}
        ... )
        >>> optimizer.param_groups[0]["betas"][0]
        0.95
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedules: Mapping[str, Schedule],
        *,
        relative: Iterable[str] = ("lr",),
        last_epoch: int = -1,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not isinstance(schedules, Mapping) or not schedules:
            raise ValueError(f"schedules must be a non-empty {{key: Schedule}} mapping, got {schedules!r}")
        for key, schedule in schedules.items():
            if not isinstance(schedule, Schedule):
                raise TypeError(f"schedules[{key!r}] must be a descentlab Schedule, got {schedule!r}")
        whole = isinstance(last_epoch, int) and not isinstance(last_epoch, bool)
        if not whole or not -1 <= last_epoch < MAX_STEPS:
            raise ValueError(f"last_epoch must be an integer in [-1, 2**63 - 1), got {last_epoch!r}")
        self.keys = {key: HyperparameterKey.parse(key) for key in schedules}
        self.schedules = {key: copy.deepcopy(schedule) for key, schedule in schedules.items()}
        self.relative = tuple(relative) if not isinstance(relative, str) else (relative,)
        # "lr" is relative by default even when only other keys are scheduled; that default is harmless.
        unknown = [key for key in self.relative if key not in self.keys and key != "lr"]
        if unknown:
            raise ValueError(
                f"relative names keys that are not scheduled: {unknown}; scheduled: {list(self.keys)}"
            )
        self.base_values: dict[str, list[float]] = {}
        for key, parsed in self.keys.items():
            for group_index, group in enumerate(optimizer.param_groups):
                current = parsed.read(group, group_index)
                if key in self.relative:
                    group.setdefault(parsed.initial_name, current)
            if key in self.relative:
                self.base_values[key] = [
                    float(group[parsed.initial_name]) for group in optimizer.param_groups
                ]
        for group in optimizer.param_groups:
            # torch's base class insists on initial_lr when last_epoch != -1; supply it from the group.
            group.setdefault("initial_lr", group["lr"])
        super().__init__(optimizer, last_epoch)

    def values_at(self, step: int) -> dict[str, list[float]]:
        """Return ``{key: [value for each param group]}`` that the scheduler sets at ``step``."""
        values = {}
        for key, schedule in self.schedules.items():
            value = schedule(step)
            bases = self.base_values.get(key)
            groups = len(self.optimizer.param_groups)
            per_group = [value * base for base in bases] if bases is not None else [value] * groups
            if key == "lr":
                # timm's convention for layer-wise lr decay: the scheduler multiplies by lr_scale.
                scales = [float(group.get("lr_scale", 1.0)) for group in self.optimizer.param_groups]
                per_group = [lr * scale for lr, scale in zip(per_group, scales)]
            values[key] = per_group
        return values

    def apply(self) -> None:
        """Write the values of the current step (``last_epoch``) into the optimizer's param groups."""
        groups = len(self.optimizer.param_groups)
        for key, bases in self.base_values.items():
            if len(bases) != groups:
                raise RuntimeError(
                    f"the optimizer has {groups} param groups but the {key!r} schedule was built for "
                    f"{len(bases)}; build a new scheduler after add_param_group"
                )
        values = self.values_at(self.last_epoch)
        for key, per_group in values.items():
            for group, value in zip(self.optimizer.param_groups, per_group):
                self.keys[key].write(group, value)
        self._last_lr = [
            group["lr"].clone() if isinstance(group["lr"], torch.Tensor) else group["lr"]
            for group in self.optimizer.param_groups
        ]

    def step(self, metric: float | torch.Tensor | None = None) -> None:  # type: ignore[override]
        """Advance one step (one batch or one epoch, see the module docstring).

        Args:
            metric: optional value of the monitored metric measured after the step that just finished;
                passed to every schedule that uses metrics (performance scheduling). Raises
                ``ValueError`` when no schedule uses metrics, rather than dropping it.
        """
        if metric is not None:
            listeners = [schedule for schedule in self.schedules.values() if schedule.uses_metric]
            if not listeners:
                raise ValueError(
                    f"step() got metric={metric!r} but none of the schedules {list(self.schedules)} uses "
                    "metrics; call step() without it, or include a Plateau schedule"
                )
            for schedule in listeners:
                schedule.report(float(metric), self.last_epoch)
        self._step_count += 1
        self.last_epoch += 1
        self.apply()

    def _update_lr(self, epoch: int | None = None) -> None:
        # torch's SequentialLR restarts a scheduler at its milestone through this hook; route it through
        # apply() so every scheduled key (not only lr) follows.
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        self.apply()

    def get_lr(self) -> list[float]:
        """Return the learning rates for the current step (torch's API; prefer :meth:`get_last_lr`)."""
        if "lr" in self.schedules:
            return self.values_at(self.last_epoch)["lr"]
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def get_last_values(self) -> dict[str, list[float]]:
        """Return ``{key: [current value in each param group]}`` for every scheduled key."""
        return {
            key: [parsed.read(group, index) for index, group in enumerate(self.optimizer.param_groups)]
            for key, parsed in self.keys.items()
        }

    def state_dict(self) -> dict[str, Any]:
        """Return the step counter, base values and metric state as plain Python data."""
        return {
            "last_epoch": self.last_epoch,
            "_step_count": self._step_count,
            "keys": list(self.keys),
            "relative": list(self.relative),
            "base_values": copy.deepcopy(self.base_values),
            "base_lrs": list(self.base_lrs),
            "schedule_states": {key: schedule.state_dict() for key, schedule in self.schedules.items()},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` and set the param groups to the values of the saved step."""
        if list(state_dict.get("keys", ())) != list(self.keys):
            raise ValueError(
                f"state_dict schedules keys {state_dict.get('keys')!r} but this scheduler schedules "
                f"{list(self.keys)}; build the scheduler with the same schedules before loading"
            )
        if list(state_dict["relative"]) != list(self.relative):
            raise ValueError(
                f"state_dict has relative={state_dict['relative']!r} but this scheduler has "
                f"relative={list(self.relative)!r}"
            )
        self.last_epoch = state_dict["last_epoch"]
        self._step_count = state_dict["_step_count"]
        self.base_values = copy.deepcopy(state_dict["base_values"])
        self.base_lrs = list(state_dict["base_lrs"])
        for key, schedule in self.schedules.items():
            schedule.load_state_dict(copy.deepcopy(state_dict["schedule_states"][key]))
        for key, bases in self.base_values.items():
            for group, base in zip(self.optimizer.param_groups, bases):
                group[self.keys[key].initial_name] = base
        self.apply()


class ScheduledLR(HyperparameterScheduler):
    """Set every param group's learning rate from one schedule: the thin ``LRScheduler`` around it.

    With ``relative=True`` (default) the schedule is a multiplier of each group's initial learning rate:
    ``lr_g(t) = schedule(t) * initial_lr_g``, like torch's ``LambdaLR``, so per-group learning rates keep
    their ratios. With ``relative=False`` the schedule's value is the learning rate of every group.

    Example:
        >>> from descentlab.schedules import Cosine, Warmup
        >>> model = torch.nn.Linear(2, 1)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> scheduler = ScheduledLR(optimizer, Warmup("linear", 10, then=Cosine(90)))
        >>> [round(lr, 3) for lr in scheduler.get_last_lr()]
        [0.0]
    """

    def __init__(
        self, optimizer: Optimizer, schedule: Schedule, *, relative: bool = True, last_epoch: int = -1
    ) -> None:
        if not isinstance(relative, bool):
            raise TypeError(f"relative must be True or False, got {relative!r}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a descentlab Schedule, got {schedule!r}")
        super().__init__(
            optimizer, {"lr": schedule}, relative=("lr",) if relative else (), last_epoch=last_epoch
        )

    @property
    def schedule(self) -> Schedule:
        """The learning-rate schedule (this scheduler's own copy)."""
        return self.schedules["lr"]
