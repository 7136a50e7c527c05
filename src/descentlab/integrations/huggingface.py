"""Hugging Face ``Trainer``: descentlab's optimizers and schedulers, and a diagnostics callback.

Two documented ways in (both tested):

- ``Trainer(..., optimizer_cls_and_kwargs=optimizer_cls_and_kwargs("RAdam", lr=1e-3))``: the Trainer
  builds the optimizer over its own param groups (no decay on biases and norms, ``args.weight_decay``
  on the rest) and its own scheduler (``args.lr_scheduler_type``). Put ``lr`` in the keywords: the
  Trainer passes only those.
- ``Trainer(..., optimizers=(optimizer, scheduler))``: anything built by hand, e.g.
  :func:`descentlab.create_optimizer` and a :class:`~descentlab.schedules.ScheduledLR` stepped per batch.

Either way the optimizer and scheduler ``state_dict`` go into the Trainer's checkpoints and resume.
Closure optimizers cannot run under the Trainer (see :mod:`descentlab.integrations`).
"""

from __future__ import annotations

import inspect
from typing import Any

try:
    from transformers import Trainer, TrainerCallback
except ImportError as error:  # the framework is an optional extra
    raise ImportError(
        "descentlab.integrations.huggingface needs transformers: pip install 'descentlab[integrations]'"
    ) from error

from torch.optim import Optimizer

from descentlab.integrations.diagnostics import StepDiagnostics
from descentlab.optim.registry import resolve_optimizer_class, step_protocol

__all__ = ["DiagnosticsCallback", "add_diagnostics", "optimizer_cls_and_kwargs"]


def optimizer_cls_and_kwargs(
    name_or_class: str | type[Optimizer], **hyperparameters: Any
) -> tuple[type[Optimizer], dict[str, Any]]:
    """``(class, keywords)`` for ``Trainer(optimizer_cls_and_kwargs=...)``, checked before training starts.

    The name resolves as in :func:`descentlab.create_optimizer`; keywords the class does not take raise
    ``ValueError`` now rather than at the first step, and so do closure optimizers, which the Trainer
    cannot drive (it calls ``step()`` without a closure).
    """
    cls = resolve_optimizer_class(name_or_class)
    if step_protocol(cls) != "gradient":
        raise ValueError(
            f"{cls.__name__} needs step(closure) ({step_protocol(cls)!r} protocol), which the Hugging Face "
            "Trainer never passes; train it with Lightning or your own loop"
        )
    try:
        inspect.signature(cls).bind(None, **hyperparameters)
    except TypeError as error:
        raise ValueError(f"bad hyperparameters for {cls.__name__}: {error}") from None
    return cls, dict(hyperparameters)


class DiagnosticsCallback(TrainerCallback):
    """Add descentlab's step measurements (:mod:`descentlab.integrations.diagnostics`) to every log.

    At each logging step the metrics of the last measured optimizer step join the Trainer's ``logs``
    (and ``state.log_history``), so every reporting integration (TensorBoard, W&B, ...) receives them,
    provided this callback runs first: add it with :func:`add_diagnostics`.

    Args:
        every_n_steps: measure one optimizer step in this many (each measurement copies the parameters).
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        self.every_n_steps = every_n_steps
        self.diagnostics: StepDiagnostics | None = None
        self._logged = 0

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        """Attach to the Trainer's optimizer (inside accelerate's wrapper)."""
        if optimizer is None:
            raise ValueError("the Trainer passed no optimizer to on_train_begin; cannot measure its steps")
        self.diagnostics = StepDiagnostics(optimizer, self.every_n_steps)
        self._logged = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        """Merge the latest measurements into ``logs`` and the matching ``state.log_history`` entry."""
        if self.diagnostics is None or logs is None or self.diagnostics.measured_steps == self._logged:
            return  # nothing measured since the last log (e.g. the closing summary)
        self._logged = self.diagnostics.measured_steps
        logs.update(self.diagnostics.latest)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(self.diagnostics.latest)

    def on_train_end(self, args, state, control, **kwargs):
        """Detach from the optimizer."""
        if self.diagnostics is not None:
            self.diagnostics.remove()
            self.diagnostics = None


def add_diagnostics(trainer: Trainer, every_n_steps: int = 1) -> DiagnosticsCallback:
    """Put a :class:`DiagnosticsCallback` first among ``trainer``'s callbacks and return it.

    First, because callbacks see ``logs`` in order and the reporting ones come before user callbacks.
    """
    callback = DiagnosticsCallback(every_n_steps)
    trainer.callback_handler.callbacks.insert(0, callback)
    return callback
