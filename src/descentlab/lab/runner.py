"""Train one :class:`RunSpec` and record what happened, step by step.

Recorded per recorded step: training loss, learning rate, gradient norm, update norm, training wall
time (evaluation excluded) and time spent inside ``optimizer.step()``; validation metrics every
``eval_every`` steps (per epoch for epoch budgets) and at the end; for 2-parameter problems the
parameters ``(x, y)`` after each step, for trajectory plots.

Divergence is an outcome, not a crash: a run stops as ``"diverged"`` when the loss or a parameter
becomes NaN/Inf, or when ``|loss| > DIVERGENCE_FACTOR * max(|initial loss|, 1)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from descentlab.lab.schedule_bridge import build_scheduler
from descentlab.lab.spec import RunSpec
from descentlab.optim.registry import make_optimizer
from descentlab.problems.registry import get_problem

DIVERGENCE_FACTOR = 1e3
"""A loss this many times larger in magnitude than the initial loss (or 1) counts as diverged."""

MAX_RECORDS = 1000
"""Long runs record every k-th step so a run keeps at most about this many step records."""

EVALUATIONS_PER_RUN = 50
"""Step-budget runs evaluate about this many times (plus once at the start and at the end)."""


@dataclass
class RunResult:
    """What a finished run produced: a summary and its step records.

    Attributes:
        spec: the run.
        outcome: ``"completed"`` or ``"diverged"``.
        records: one dict per recorded step with keys ``step, loss, lr, grad_norm, update_norm,
            seconds, optimizer_seconds, x, y, metrics`` (``metrics`` is a dict or ``None``;
            ``x``/``y`` are ``None`` unless the problem has two parameters).
        summary: ``steps`` done, ``initial_loss``, ``final_loss``, ``final_metric``, ``best_metric``,
            ``steps_to_target``, ``seconds_to_target``, ``seconds``, ``optimizer_seconds_per_step``.
    """

    spec: RunSpec
    outcome: str
    records: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _budget(spec: RunSpec, steps_per_epoch: int, default_steps: int) -> int:
    if spec.steps is not None:
        return spec.steps
    if spec.epochs is not None:
        return spec.epochs * steps_per_epoch
    return default_steps


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def run_spec(spec: RunSpec) -> RunResult:
    """Train ``spec`` on its problem and return the result (never raises on divergence).

    Unknown problem/optimizer names and bad hyperparameters raise ``ValueError``.
    """
    problem = get_problem(spec.problem)
    torch.manual_seed(spec.seed)  # modules the task builds without a generator still start paired
    task = problem.task(spec.seed, spec.batch_size)
    total_steps = _budget(spec, task.steps_per_epoch, problem.budget_steps)
    hyperparameters = spec.hyperparameter_dict
    if spec.variant is not None:
        hyperparameters["variant"] = spec.variant
    parameters = [p for p in task.model.parameters() if p.requires_grad]
    optimizer = make_optimizer(spec.optimizer, parameters, **hyperparameters)
    scheduler = build_scheduler(spec.schedule_dict, optimizer, total_steps)

    record_every = max(1, math.ceil(total_steps / MAX_RECORDS))
    eval_every = (
        task.steps_per_epoch if spec.epochs is not None else max(1, total_steps // EVALUATIONS_PER_RUN)
    )
    two_dimensional = sum(p.numel() for p in parameters) == 2

    def position() -> tuple[float | None, float | None]:
        if not two_dimensional:
            return None, None
        flat = torch.cat([p.detach().reshape(-1) for p in parameters]).double()
        return float(flat[0]), float(flat[1])

    def evaluate() -> dict[str, float]:
        task.model.eval()
        with torch.no_grad():
            metrics = {key: float(value) for key, value in task.evaluate().items()}
        task.model.train()
        return metrics

    records: list[dict[str, Any]] = []
    initial_metrics = evaluate()
    x0, y0 = position()
    records.append(
        {
            "step": 0,
            "loss": None,
            "lr": optimizer.param_groups[0]["lr"],
            "grad_norm": None,
            "update_norm": None,
            "seconds": 0.0,
            "optimizer_seconds": 0.0,
            "x": x0,
            "y": y0,
            "metrics": initial_metrics,
        }
    )
    target = problem.target
    better = (lambda a, b: a >= b) if problem.higher_is_better else (lambda a, b: a <= b)
    steps_to_target = seconds_to_target = None
    if (
        target is not None
        and problem.metric in initial_metrics
        and better(initial_metrics[problem.metric], target)
    ):
        steps_to_target, seconds_to_target = 0, 0.0

    outcome = "completed"
    initial_loss: float | None = None
    seconds = optimizer_seconds = 0.0
    loss_value = math.nan
    steps_done = 0
    for step in range(1, total_steps + 1):
        lr = optimizer.param_groups[0]["lr"]
        batch = next(task.batches)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss(batch)
        loss.backward()
        grads = [p.grad for p in parameters if p.grad is not None]
        grad_norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0
        before = [p.detach().clone() for p in parameters]
        step_started = time.perf_counter()
        optimizer.step()
        step_seconds = time.perf_counter() - step_started
        if scheduler is not None:
            scheduler.step()
        update_norm = float(
            torch.linalg.vector_norm(
                torch.stack([(p.detach() - b).norm() for p, b in zip(parameters, before)])
            )
        )
        seconds += time.perf_counter() - started
        optimizer_seconds += step_seconds
        steps_done = step
        loss_value = float(loss.detach())
        if initial_loss is None:
            initial_loss = loss_value
        x, y = position()
        blown_up = not math.isfinite(loss_value) or abs(loss_value) > DIVERGENCE_FACTOR * max(
            abs(initial_loss), 1.0
        )
        bad_parameters = not all(bool(torch.isfinite(p).all()) for p in parameters)
        diverged = blown_up or bad_parameters or not math.isfinite(update_norm)
        last = step == total_steps or diverged
        metrics = None
        if (step % eval_every == 0 or last) and not diverged:
            metrics = evaluate()
            reached = target is not None and better(metrics.get(problem.metric, math.nan), target)
            if steps_to_target is None and reached:
                steps_to_target, seconds_to_target = step, seconds
        if step % record_every == 0 or last or metrics is not None:
            records.append(
                {
                    "step": step,
                    "loss": _finite(loss_value),
                    "lr": lr,
                    "grad_norm": _finite(grad_norm),
                    "update_norm": _finite(update_norm),
                    "seconds": seconds,
                    "optimizer_seconds": optimizer_seconds,
                    "x": None if x is None else _finite(x),
                    "y": None if y is None else _finite(y),
                    "metrics": metrics,
                }
            )
        if diverged:
            outcome = "diverged"
            break

    evaluated = [
        r["metrics"][problem.metric] for r in records if r["metrics"] and problem.metric in r["metrics"]
    ]
    evaluated = [value for value in evaluated if math.isfinite(value)]
    final_metric = None if outcome == "diverged" or not evaluated else evaluated[-1]
    best_metric = (max(evaluated) if problem.higher_is_better else min(evaluated)) if evaluated else None
    summary = {
        "steps": steps_done,
        "initial_loss": initial_loss,
        "final_loss": _finite(loss_value) if outcome == "completed" else None,
        "final_metric": final_metric,
        "best_metric": best_metric,
        "steps_to_target": steps_to_target,
        "seconds_to_target": seconds_to_target,
        "seconds": seconds,
        "optimizer_seconds_per_step": optimizer_seconds / max(1, steps_done),
    }
    return RunResult(spec=spec, outcome=outcome, records=records, summary=summary)
