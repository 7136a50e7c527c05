"""The learning-rate range test (Smith 2017; fastai's ``lr_find``).

Train for a few hundred steps while the learning rate grows exponentially from tiny to huge; the loss
first stays flat, then falls, then explodes. A good learning rate sits where the loss falls fastest,
well before it explodes. The model and the optimizer are put back exactly as they were afterwards.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm


@dataclass
class LRRangeTestResult:
    """The sweep and what it suggests.

    Attributes:
        learning_rates: learning rate of each step taken.
        losses: raw training loss at each step (before that step's update).
        smoothed_losses: bias-corrected exponential moving average of ``losses``.
        suggestions: named suggestions (see :func:`lr_range_test`); empty when too few steps ran.
        stopped_early: whether the sweep stopped on divergence before reaching ``end_lr``.
    """

    learning_rates: list[float]
    losses: list[float]
    smoothed_losses: list[float]
    suggestions: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False

    def summary(self) -> str:
        """One line: steps, range covered, and every suggestion with its rule."""
        first, last = self.learning_rates[0], self.learning_rates[-1]
        text = f"{len(self.learning_rates)} steps, lr {first:.3g} .. {last:.3g}"
        if self.stopped_early:
            text += " (stopped: loss diverged)"
        if not self.suggestions:
            return text + "; too few steps for a suggestion"
        return text + "; " + ", ".join(f"{rule}: {value:.3g}" for rule, value in self.suggestions.items())


def _suggest(learning_rates: list[float], smoothed: list[float]) -> dict[str, float]:
    lrs, losses = np.asarray(learning_rates), np.asarray(smoothed)
    # fastai drops the first 10% (the EMA is still warming up) and the last 5 points (the explosion).
    head, tail = len(lrs) // 10, 5
    if len(lrs) - head - tail >= 3:
        lrs, losses = lrs[head : len(lrs) - tail], losses[head : len(losses) - tail]
    if len(lrs) < 3 or not np.isfinite(losses).all():
        finite = np.isfinite(losses)
        lrs, losses = lrs[finite], losses[finite]
        if len(lrs) < 3:
            return {}
    # Differences over +-n/20 steps rather than fastai's single steps: minibatch noise that survives the
    # smoothing otherwise decides the steepest point (measured: 5e-7 instead of ~1e-2 on a 4-batch task).
    width = max(1, len(lrs) // 20)
    if len(lrs) > 2 * width:
        log_lrs = np.log(lrs)
        slopes = (losses[2 * width :] - losses[: -2 * width]) / (log_lrs[2 * width :] - log_lrs[: -2 * width])
        steepest = lrs[width + int(np.argmin(slopes))]
    else:
        steepest = lrs[int(np.argmin(np.diff(losses) / np.diff(np.log(lrs))))]
    return {
        "steepest": float(steepest),
        "minimum/10": float(lrs[int(np.argmin(losses))] / 10),
    }


def lr_range_test(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[], torch.Tensor],
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 100,
    smoothing: float = 0.98,
    divergence_factor: float = 4.0,
    progress: bool = True,
) -> LRRangeTestResult:
    r"""Sweep the learning rate exponentially, record the loss, suggest a learning rate, restore everything.

    Step :math:`i = 0, \dots, N-1` sets every param group's ``lr`` to
    :math:`\eta_i = \eta_0 (\eta_{N-1}/\eta_0)^{i/(N-1)}`, calls ``loss_fn()`` (which should draw a
    *new* minibatch each call, e.g. ``lambda: task.loss(next(task.batches))``), backpropagates and steps.
    The smoothed loss is the bias-corrected EMA :math:`s_i = a_i / (1 - \beta^{i+1})`,
    :math:`a_i = \beta a_{i-1} + (1-\beta)\ell_i`. The sweep stops when :math:`s_i` exceeds
    ``divergence_factor`` times its best value so far or the loss is not finite.

    Suggestions, computed on the smoothed loss without the first 10% of the steps and the last 5 (as
    fastai does):

    - ``"steepest"``: the learning rate where the smoothed loss falls fastest per unit of
      :math:`\log \eta`, fastai's ``steep``, except that the slope at step :math:`i` is the central
      difference over :math:`i \pm \lfloor N/20 \rfloor` steps instead of one step, so that minibatch
      noise left after smoothing does not pick the point;
    - ``"minimum/10"``: a tenth of the learning rate at the smallest smoothed loss, fastai's ``minimum``.

    Afterwards the model's parameters, buffers and gradients and the optimizer's state and param groups
    are restored from deep copies (bit for bit). The minibatch iterator and the global random number
    generator are *not* rewound.

    Args:
        model: the module being trained.
        optimizer: any ``torch.optim.Optimizer`` over (some of) ``model``'s parameters.
        loss_fn: zero-argument closure returning the training loss on a fresh minibatch.
        start_lr, end_lr: the sweep range, ``0 < start_lr < end_lr``.
        steps: number of steps ``N >= 2``.
        smoothing: EMA factor :math:`\beta \in [0, 1)`.
        divergence_factor: stop threshold, ``> 1``.
        progress: show a tqdm progress bar (only when stderr is a terminal).

    References:
        L. N. Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017, section 3.3.
        J. Howard, S. Gugger, "fastai: A Layered API for Deep Learning", Information 11(2), 2020
        (``Learner.lr_find``).
    """
    if not (math.isfinite(start_lr) and start_lr > 0):
        raise ValueError(f"start_lr must be a finite number > 0, got {start_lr}")
    if not (math.isfinite(end_lr) and end_lr > start_lr):
        raise ValueError(f"end_lr must be finite and > start_lr={start_lr}, got {end_lr}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    if not divergence_factor > 1:
        raise ValueError(f"divergence_factor must be > 1, got {divergence_factor}")
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_gradients = [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]
    learning_rates: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    stopped_early = False
    try:
        average, best = 0.0, math.inf
        for step in tqdm(range(steps), desc="lr range test", disable=None if progress else True):
            learning_rate = start_lr * (end_lr / start_lr) ** (step / (steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = learning_rate
            optimizer.zero_grad()
            loss = loss_fn()
            value = float(loss.detach())
            learning_rates.append(learning_rate)
            losses.append(value)
            average = smoothing * average + (1 - smoothing) * value
            smoothed_value = average / (1 - smoothing ** (step + 1))
            smoothed.append(smoothed_value)
            if not math.isfinite(smoothed_value) or smoothed_value > divergence_factor * best:
                stopped_early = step < steps - 1
                break
            best = min(best, smoothed_value)
            loss.backward()
            optimizer.step()
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        for parameter, gradient in zip(model.parameters(), saved_gradients):
            parameter.grad = gradient
    return LRRangeTestResult(
        learning_rates=learning_rates,
        losses=losses,
        smoothed_losses=smoothed,
        suggestions=_suggest(learning_rates, smoothed),
        stopped_early=stopped_early,
    )


def plot_lr_range_test(result: LRRangeTestResult) -> Figure:
    """Loss against learning rate (log x axis): raw and smoothed loss, suggestions as vertical lines."""
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    axes.plot(result.learning_rates, result.losses, color="lightgrey", linewidth=1, label="loss")
    axes.plot(result.learning_rates, result.smoothed_losses, color="tab:blue", label="smoothed loss")
    for (rule, value), color in zip(result.suggestions.items(), ("tab:red", "tab:green", "tab:purple")):
        axes.axvline(value, color=color, linestyle="--", linewidth=1, label=f"{rule}: {value:.2g}")
    axes.set_xscale("log")
    finite = [value for value in result.smoothed_losses if math.isfinite(value)]
    if finite:
        low, first = min(finite), finite[0]
        axes.set_ylim(low - 0.1 * abs(first - low) - 1e-12, max(first, low) + 0.5 * abs(first - low) + 1e-12)
    axes.set_xlabel("learning rate")
    axes.set_ylabel("training loss")
    axes.set_title("learning-rate range test")
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return figure
