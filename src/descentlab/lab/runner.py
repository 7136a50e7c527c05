"""Train one :class:`RunSpec` and record what happened, step by step.

The loop dispatches on the optimizer's declared ``step_protocol`` (:mod:`descentlab.lab.protocols`);
the schedule comes from :mod:`descentlab.schedules` (:mod:`descentlab.lab.schedules`) and the
techniques from :mod:`descentlab.training` (:mod:`descentlab.lab.techniques`).

Recorded per recorded step (:class:`~descentlab.lab.records.StepRecord`): training loss, learning rate,
gradient norm, update norm, training wall time (evaluation excluded), time inside ``step()``, loss and
gradient evaluations so far; validation metrics every ``eval_every`` steps (per epoch for epoch
budgets; ``record.evaluations`` times a run, default 50) and at the end, training-subset metrics at
every fifth of those; test metrics at the end; for 2-parameter problems the iterate
``(x, y)``. Evaluation, positions and update norms use the optimizer's true iterate: an optimizer
that holds a look-ahead point in its parameters (Nesterov) exposes ``at_iterate()``.

Divergence is an outcome, not a crash: a run stops as ``"diverged"`` when the loss or a parameter
becomes NaN/Inf, or when ``|loss| > DIVERGENCE_FACTOR * max(|initial loss|, 1)``. An optimizer that
gives up during training (``RuntimeError``: e.g. Newton on a singular Hessian without damping) ends the
run as ``"failed"``, with its message kept in the summary (``extra["error"]``).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from descentlab.lab.instruments import Instruments
from descentlab.lab.protocols import Counts, StepOutcome, stepper_for
from descentlab.lab.records import InstrumentRecord, RunSummary, StepRecord
from descentlab.lab.schedules import build_scheduler, uses_metric
from descentlab.lab.spec import RunSpec
from descentlab.lab.techniques import Techniques
from descentlab.optim.registry import get_optimizer_class, step_protocol
from descentlab.problems.base import Problem, Task
from descentlab.problems.registry import get_problem
from descentlab.training.clipping import NonFiniteGradientError

DIVERGENCE_FACTOR = 1e3
"""A loss this many times larger in magnitude than the initial loss (or 1) counts as diverged."""

MAX_RECORDS = 1000
"""Long runs record every k-th step so a run keeps at most about this many step records."""

EVALUATIONS_PER_RUN = 50
"""Step-budget runs evaluate about this many times (plus once at the start and at the end), unless the
spec's ``record.evaluations`` says otherwise."""

TRAIN_EVALUATION_EVERY = 5
"""The training subset is evaluated at every fifth validation evaluation (and at the start and end)."""

THREADS_VARIABLE = "DESCENTLAB_THREADS"
"""Environment variable with the number of threads a run trains on (default 1)."""


@contextlib.contextmanager
def training_threads() -> Iterator[None]:
    """Train on ``$DESCENTLAB_THREADS`` threads (default 1), then restore torch's setting.

    The lab's problems are small: measured on 2 shared cores, a digits-mlp run took 54-68 s on torch's
    default threads against 1.9 s on one, because the threads spin and contend for every tiny kernel.
    """
    previous = torch.get_num_threads()
    text = os.environ.get(THREADS_VARIABLE, "1")
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{THREADS_VARIABLE} must be a whole number >= 1, got {text!r}")
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class RunResult:
    """What a finished run produced.

    Attributes:
        spec: the run.
        outcome: ``"completed"``, ``"diverged"`` or ``"failed"``.
        records: the step records.
        summary: the run's numbers.
        instruments: optional measurements (empty unless the spec asked for some).
    """

    spec: RunSpec
    outcome: str
    records: list[StepRecord] = field(default_factory=list)
    summary: RunSummary = field(default_factory=RunSummary)
    instruments: list[InstrumentRecord] = field(default_factory=list)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _budget(spec: RunSpec, steps_per_epoch: int, default_steps: int) -> int:
    if spec.steps is not None:
        return spec.steps
    if spec.epochs is not None:
        return spec.epochs * steps_per_epoch
    return default_steps


def build_task(problem: Problem, spec: RunSpec) -> Task:
    """The seeded task of ``spec`` (``batch_size="full"`` trains on the whole training set)."""
    batch_size = spec.batch_size
    options = spec.model_dict or None
    if batch_size == "full":
        # with batches of one, an epoch has one step per training example
        batch_size = None if problem.batch_size is None else problem.task(0, 1, options).steps_per_epoch
    return problem.task(spec.seed, batch_size, options=options)


EvaluationHook = Callable[[int, dict[str, float]], None]
"""Called with ``(step, validation metrics)`` after each evaluation during training (a tuner reports
them to its trial); an exception it raises (a pruned trial) ends the run and propagates."""

RecordHook = Callable[[StepRecord], None]
"""Called with every step record as soon as the runner keeps it (live logging writes it out)."""


class Training:
    """One run in progress: task, optimizer, schedule, techniques, instruments and counters."""

    def __init__(
        self, spec: RunSpec, on_evaluation: EvaluationHook | None = None, on_record: RecordHook | None = None
    ) -> None:
        self.spec = spec
        self.on_evaluation = on_evaluation
        self.on_record = on_record
        self.problem = get_problem(spec.problem)
        torch.manual_seed(spec.seed)  # modules the task builds without a generator still start paired
        self.task = build_task(self.problem, spec)
        self.total_steps = _budget(spec, self.task.steps_per_epoch, self.problem.budget_steps)
        cls = get_optimizer_class(spec.optimizer)
        self.protocol = step_protocol(cls)
        self.techniques = Techniques(spec.technique_dict, self.task.model)
        hyperparameters = spec.hyperparameter_dict
        if spec.variant is not None:
            hyperparameters["variant"] = spec.variant
        if self.protocol == "svrg":
            hyperparameters.setdefault("snapshot_every", self.task.steps_per_epoch)  # once per epoch
        try:
            self.optimizer = cls(self.techniques.parameter_groups(hyperparameters), **hyperparameters)
        except TypeError as error:
            raise ValueError(f"bad hyperparameters for {cls.__name__}: {error}") from None
        self.techniques.attach(self.optimizer)
        self.scheduler = build_scheduler(
            spec.schedule_dict, self.optimizer, self.total_steps, self.problem.higher_is_better
        )
        self.parameters = [p for p in self.task.model.parameters()]
        self.instruments = Instruments(spec.record_dict, self.task.model, self.total_steps)
        self.counts = Counts()
        self.stepper = stepper_for(self.protocol)(
            self.task, self.optimizer, self._objective, self.parameters, self.techniques.clip, self.counts
        )
        self.eval_every = (
            self.task.steps_per_epoch
            if spec.epochs is not None
            else max(1, self.total_steps // spec.record_dict.get("evaluations", EVALUATIONS_PER_RUN))
        )
        self.record_every = max(1, math.ceil(self.total_steps / MAX_RECORDS))

    def _objective(self, batch: Any) -> torch.Tensor:
        loss = self.task.loss(batch)
        penalty = self.techniques.penalty()
        return loss if penalty is None else loss + penalty

    def at_iterate(self) -> contextlib.AbstractContextManager:
        """A block in which the parameters hold the optimizer's true iterate."""
        at_iterate = getattr(self.optimizer, "at_iterate", None)
        return at_iterate() if at_iterate is not None else contextlib.nullcontext()

    def point(self) -> torch.Tensor:
        """The true iterate as one flat float64 vector."""
        with self.at_iterate(), torch.no_grad():
            return torch.cat([p.detach().reshape(-1) for p in self.parameters]).double()

    def evaluate(self, which: str = "validation") -> dict[str, float] | None:
        """Metrics of the true iterate on a split (``None`` when the problem has no such split)."""
        function = {
            "validation": self.task.evaluate,
            "train": getattr(self.task, "evaluate_train", None),
            "test": getattr(self.task, "evaluate_test", None),
        }[which]
        if function is None:
            return None
        model = self.task.model
        was_training = model.training
        model.eval()
        with self.at_iterate(), torch.no_grad():
            metrics = {key: float(value) for key, value in function().items()}
        model.train(was_training)
        return metrics


@dataclass
class _Progress:
    """What the loop tracks between steps."""

    initial_loss: float | None = None
    loss: float = math.nan
    seconds: float = 0.0
    optimizer_seconds: float = 0.0
    steps: int = 0
    stop_reason: str = "budget"
    best: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    evaluations_without_gain: int = 0
    target: tuple[int, float, int] | None = None
    error: str | None = None
    evaluations: int = 0


def _better(problem: Problem, a: float, b: float | None) -> bool:
    if b is None:
        return True
    return a > b if problem.higher_is_better else a < b


def _reaches(problem: Problem, value: float) -> bool:
    if problem.target is None or not math.isfinite(value):
        return False
    return value >= problem.target if problem.higher_is_better else value <= problem.target


def _step_record(training: Training, progress: _Progress, outcome: StepOutcome, **fields: Any) -> StepRecord:
    return StepRecord(
        step=progress.steps,
        loss=_finite(outcome.loss),
        grad_norm=_finite(outcome.grad_norm),
        seconds=progress.seconds,
        optimizer_seconds=progress.optimizer_seconds,
        loss_evaluations=training.counts.loss_evaluations,
        gradient_evaluations=training.counts.gradient_evaluations,
        **fields,
    )


def _position(training: Training, point: torch.Tensor) -> dict[str, float | None]:
    if point.numel() != 2:
        return {"x": None, "y": None}
    return {"x": _finite(float(point[0])), "y": _finite(float(point[1]))}


def _watch_evaluation(training: Training, progress: _Progress, metrics: dict[str, float]) -> bool:
    """Track target, best weights and early stopping after an evaluation; True means stop."""
    problem = training.problem
    value = metrics.get(problem.metric, math.nan)
    if progress.target is None and _reaches(problem, value):
        progress.target = (progress.steps, progress.seconds, training.counts.gradient_evaluations)
    patience = training.spec.technique_dict.get("early_stopping")
    if not math.isfinite(value):
        return False
    if _better(problem, value, progress.best):
        progress.best = value
        progress.evaluations_without_gain = 0
        if patience:
            with training.at_iterate():
                progress.best_state = copy.deepcopy(training.task.model.state_dict())
        return False
    progress.evaluations_without_gain += 1
    return bool(patience) and progress.evaluations_without_gain >= patience


def _one_step(training: Training, progress: _Progress, batch: Any, evaluated: bool) -> StepOutcome:
    step = progress.steps + 1
    handles = training.instruments.watch(step, evaluated)
    started = time.perf_counter()
    try:
        outcome = training.stepper.step(batch)
    finally:
        training.instruments.finish_watch(handles)
    elapsed = time.perf_counter() - started
    training.instruments.after_backward(step, evaluated)
    training.instruments.after_step(step, training.optimizer)
    training.techniques.after_step(step, training.optimizer)
    progress.seconds += elapsed
    progress.optimizer_seconds += training.stepper.step_seconds
    return outcome


def _diverged(progress: _Progress, update_norm: float) -> bool:
    # A NaN/Inf parameter makes the update norm NaN/Inf (the previous point was finite), so the
    # update norm checks every parameter without a pass over each of them.
    blown_up = not math.isfinite(progress.loss) or abs(progress.loss) > DIVERGENCE_FACTOR * max(
        abs(progress.initial_loss or 0.0), 1.0
    )
    return blown_up or not math.isfinite(update_norm)


def _evaluate(training: Training, progress: _Progress, last: bool) -> tuple[dict, dict | None, bool]:
    """Validation (and every few times training-subset) metrics now; True as third item: stop early."""
    metrics = training.evaluate("validation")
    progress.evaluations += 1
    if training.on_evaluation is not None and metrics is not None:
        training.on_evaluation(progress.steps, metrics)
    train_metrics = None
    if last or progress.evaluations % TRAIN_EVALUATION_EVERY == 0:
        train_metrics = training.evaluate("train")
    return metrics, train_metrics, _watch_evaluation(training, progress, metrics)


def _step_scheduler(training: Training, metrics: dict[str, float] | None) -> None:
    scheduler = training.scheduler
    if scheduler is None:
        return
    if not uses_metric(scheduler):
        scheduler.step()
    elif metrics is not None:  # performance scheduling listens to each evaluation
        scheduler.step(metrics.get(training.problem.metric, math.nan))


def _keep(training: Training, records: list[StepRecord], record: StepRecord) -> None:
    records.append(record)
    if training.on_record is not None:
        training.on_record(record)


def _take_step(training: Training, progress: _Progress, step: int, evaluated: bool) -> StepOutcome | None:
    """One step; ``None`` when the optimizer gave up or the gradient was non-finite (recorded)."""
    try:
        outcome = _one_step(training, progress, next(training.task.batches), evaluated)
    except NonFiniteGradientError:
        progress.steps, progress.stop_reason = step, "diverged"
        return None
    except RuntimeError as error:
        progress.steps, progress.stop_reason = step, "failed"
        progress.error = " ".join(str(error).split())
        return None
    progress.steps, progress.loss = step, outcome.loss
    if progress.initial_loss is None:
        progress.initial_loss = outcome.loss
    return outcome


def _train(training: Training, records: list[StepRecord]) -> _Progress:
    """The training loop; appends to ``records`` (which hold the start) and returns the progress."""
    progress = _Progress()
    start = records[0].metrics or {}
    if _reaches(training.problem, start.get(training.problem.metric, math.nan)):
        progress.target = (0, 0.0, 0)
    grad_tol = training.spec.technique_dict.get("grad_tol")
    point = training.point()
    for step in range(1, training.total_steps + 1):
        lr = training.optimizer.param_groups[0]["lr"]
        last = step == training.total_steps
        evaluated = step % training.eval_every == 0 or last
        outcome = _take_step(training, progress, step, evaluated)
        if outcome is None:
            break
        after = training.point()
        update_norm = float(torch.linalg.vector_norm(after - point))
        point = after
        diverged = _diverged(progress, update_norm)
        small = grad_tol is not None and outcome.grad_norm is not None and outcome.grad_norm < grad_tol
        metrics = train_metrics = None
        early = False
        if (evaluated or small) and not diverged:
            metrics, train_metrics, early = _evaluate(training, progress, last or small)
        _step_scheduler(training, metrics)
        if step % training.record_every == 0 or evaluated or diverged or small or early:
            fields = dict(lr=float(lr), update_norm=_finite(update_norm), **_position(training, after))
            record = _step_record(
                training, progress, outcome, metrics=metrics, train_metrics=train_metrics, **fields
            )
            _keep(training, records, record)
        if diverged or small or early:
            progress.stop_reason = "diverged" if diverged else "grad_tol" if small else "early_stopping"
            break
    return progress


def _summary(training: Training, progress: _Progress, records: list[StepRecord]) -> RunSummary:
    problem = training.problem
    diverged = progress.stop_reason in ("diverged", "failed")
    if progress.best_state is not None and progress.stop_reason == "early_stopping":
        training.task.model.load_state_dict(progress.best_state)
    final = None if diverged else training.evaluate("validation")
    test = None if diverged else training.evaluate("test")
    train = None if diverged else training.evaluate("train")
    evaluated = [r.metrics[problem.metric] for r in records if r.metrics and problem.metric in r.metrics]
    evaluated = [value for value in evaluated if math.isfinite(value)]
    best = (max(evaluated) if problem.higher_is_better else min(evaluated)) if evaluated else None
    target = progress.target
    extra: dict[str, Any] = {} if progress.error is None else {"error": progress.error}
    switch_steps = getattr(training.optimizer, "switch_steps", None)
    if callable(switch_steps):
        extra["switch_steps"] = switch_steps()
        extra["sgd_learning_rates"] = training.optimizer.sgd_learning_rates()
    dtype = str(training.parameters[0].dtype).removeprefix("torch.") if training.parameters else "float32"
    return RunSummary(
        steps=progress.steps,
        stop_reason=progress.stop_reason,
        protocol=training.protocol,
        dtype=dtype,
        initial_loss=_finite(progress.initial_loss),
        final_loss=None if diverged else _finite(progress.loss),
        final_metric=None if final is None else _finite(final.get(problem.metric, math.nan)),
        best_metric=best,
        test_metric=None if test is None else _finite(test.get(problem.metric, math.nan)),
        train_metric=None if train is None else _finite(train.get(problem.metric, math.nan)),
        steps_to_target=None if target is None else target[0],
        seconds_to_target=None if target is None else target[1],
        evaluations_to_target=None if target is None else target[2],
        seconds=progress.seconds,
        optimizer_seconds_per_step=progress.optimizer_seconds / max(1, progress.steps),
        loss_evaluations=training.counts.loss_evaluations,
        gradient_evaluations=training.counts.gradient_evaluations,
        extra=extra,
    )


def check_spec(spec: RunSpec) -> None:
    """Build everything ``spec`` needs and take one step, so a bad configuration fails before any work.

    Numerical trouble in that step (``RuntimeError``: a singular Hessian, ...) is left to the run,
    which records it as an outcome.

    Raises:
        ValueError: what :func:`run_spec` would raise for ``spec`` (names, hyperparameters, techniques
            that do not fit the problem, an optimizer that refuses the problem at its first step).
    """
    with training_threads():
        training = Training(spec)
        with contextlib.suppress(RuntimeError, NonFiniteGradientError):
            _one_step(training, _Progress(), next(training.task.batches), evaluated=True)


def run_spec(
    spec: RunSpec, on_evaluation: EvaluationHook | None = None, on_record: RecordHook | None = None
) -> RunResult:
    """Train ``spec`` on its problem and return the result (never raises on divergence).

    Unknown problem/optimizer names, bad hyperparameters and techniques that do not fit the problem
    raise ``ValueError``; ``on_evaluation`` sees every validation evaluation during training and
    ``on_record`` every step record (the start first) as it is kept.
    """
    with training_threads():
        return _run(spec, on_evaluation, on_record)


def _run(
    spec: RunSpec, on_evaluation: EvaluationHook | None = None, on_record: RecordHook | None = None
) -> RunResult:
    return train(Training(spec, on_evaluation, on_record))


def train(training: Training) -> RunResult:
    """Train a prepared :class:`Training` to its end; its model then holds the end point.

    :func:`run_spec` is this on a fresh ``Training`` (inside :func:`training_threads`); the report's
    analysis calls it directly to keep the trained model, with an ``on_record`` hook that reads
    ``training.point()`` at every kept record.
    """
    spec = training.spec
    records: list[StepRecord] = []
    start = StepRecord(
        step=0,
        lr=float(training.optimizer.param_groups[0]["lr"]),
        metrics=training.evaluate("validation"),
        train_metrics=training.evaluate("train"),
        **_position(training, training.point()),
    )
    _keep(training, records, start)
    progress = _train(training, records)
    summary = _summary(training, progress, records)
    outcome = summary.stop_reason if summary.stop_reason in ("diverged", "failed") else "completed"
    return RunResult(spec, outcome, records, summary, training.instruments.records)
