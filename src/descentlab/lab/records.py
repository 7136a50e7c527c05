"""What a run records, defined once: the step record, the run summary and instrumentation entries.

The runner fills these, the store derives its columns from them, and the report and the data files
read them back; no other module spells the keys out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class StepRecord:
    """One recorded step (step 0 is the start, before any update).

    Attributes:
        step: optimizer steps done.
        loss: training (minibatch) loss at the start of the step; ``None`` at step 0 or when not finite.
        lr: learning rate of the first param group used by the step.
        grad_norm: global 2-norm of the gradient at the start of the step (before clipping).
        update_norm: 2-norm of the change of the iterate made by the step.
        seconds: training wall time so far (evaluation excluded).
        optimizer_seconds: time inside ``optimizer.step()`` so far.
        loss_evaluations: forward passes over a minibatch so far (a full-data pass counts as the
            number of minibatches in it).
        gradient_evaluations: backward passes over a minibatch so far, counted the same way.
        x, y: the iterate of a two-parameter problem (``None`` otherwise).
        metrics: validation metrics when evaluated at this step, else ``None``.
        train_metrics: metrics on the fixed training subset when evaluated, else ``None``.
    """

    step: int
    loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    update_norm: float | None = None
    seconds: float = 0.0
    optimizer_seconds: float = 0.0
    loss_evaluations: int = 0
    gradient_evaluations: int = 0
    x: float | None = None
    y: float | None = None
    metrics: dict[str, float] | None = None
    train_metrics: dict[str, float] | None = None

    @property
    def effective_step_size(self) -> float | None:
        """``update_norm / grad_norm``: the step length per unit of gradient the optimizer took."""
        if self.update_norm is None or not self.grad_norm:
            return None
        return self.update_norm / self.grad_norm


SCALAR_COLUMNS = tuple(f.name for f in fields(StepRecord) if f.name not in ("metrics", "train_metrics"))
"""Step-record fields stored as plain columns (the metric dicts are stored as JSON)."""

JSON_COLUMNS = ("metrics", "train_metrics")


@dataclass
class RunSummary:
    """The numbers of one finished run.

    Attributes:
        steps: steps done.
        stop_reason: ``budget``, ``diverged``, ``failed``, ``early_stopping`` or ``grad_tol``.
        protocol: the optimizer's step protocol (``gradient``, ``closure``, ...).
        dtype: parameter dtype (``float32``...): sets the resolution below which values tie.
        initial_loss: training loss of the first step.
        final_loss: training loss of the last step (``None`` when diverged).
        final_metric: validation headline metric at the end (after restoring the best weights under
            early stopping); ``None`` when diverged.
        best_metric: best validation headline metric seen.
        test_metric: test headline metric at the end, for problems with a test split.
        train_metric: headline metric on the fixed training subset at the end.
        steps_to_target, seconds_to_target, evaluations_to_target: first evaluation reaching the
            problem's target (gradient evaluations for the last).
        seconds: training wall time; optimizer_seconds_per_step: mean time inside ``step()``.
        loss_evaluations, gradient_evaluations: totals (see :class:`StepRecord`).
        extra: optimizer facts worth reporting (SWATS's switch step and SGD rate, ...).
    """

    steps: int = 0
    stop_reason: str = "budget"
    protocol: str = "gradient"
    dtype: str = "float32"
    initial_loss: float | None = None
    final_loss: float | None = None
    final_metric: float | None = None
    best_metric: float | None = None
    test_metric: float | None = None
    train_metric: float | None = None
    steps_to_target: int | None = None
    seconds_to_target: float | None = None
    evaluations_to_target: int | None = None
    seconds: float = 0.0
    optimizer_seconds_per_step: float = 0.0
    loss_evaluations: int = 0
    gradient_evaluations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        """Inverse of :meth:`to_dict`; keys this version does not know are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class InstrumentRecord:
    """One optional measurement at one step: ``kind`` names it, ``value`` is JSON-ready.

    Kinds: ``layer_grad_norms`` ({parameter name: norm}), ``activations`` ({layer: {mean, std,
    saturated, dead}}), ``preactivations`` ({layer: {mean, std}} of each activation layer's input),
    ``histograms`` ({layer: {edges, counts}}), ``line_search`` (the trial step sizes, their losses and
    the accepted one).
    """

    step: int
    kind: str
    value: Any
