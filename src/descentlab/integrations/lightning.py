"""Lightning: a callback that logs what only descentlab knows about each optimizer step.

Use descentlab's optimizers and schedulers in ``configure_optimizers`` as any torch ones (see the
README); closure optimizers work too (see :mod:`descentlab.integrations`).

Example::

    trainer = lightning.pytorch.Trainer(callbacks=[DiagnosticsCallback()], ...)
"""

from __future__ import annotations

from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as error:  # the framework is an optional extra
    raise ImportError(
        "descentlab.integrations.lightning needs Lightning: pip install 'descentlab[integrations]'"
    ) from error

from descentlab.integrations.diagnostics import StepDiagnostics

__all__ = ["DiagnosticsCallback"]


class DiagnosticsCallback(pl.Callback):
    """Log update norm, effective step size, gradient-to-update ratio per group (and LineSearchGD's step
    sizes, SWATS's switch) through ``LightningModule.log``, so they reach every logger the trainer has.

    Metric names are those of :mod:`descentlab.integrations.diagnostics`; with several optimizers the
    second and later insert ``optimizer{k}/`` after ``descentlab/``.

    Args:
        every_n_steps: measure one optimizer step in this many (each measurement copies the parameters).
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        self.every_n_steps = every_n_steps
        self.diagnostics: list[StepDiagnostics] = []
        self._logged: list[int] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Attach to the optimizers Lightning has just set up."""
        self.diagnostics = [
            StepDiagnostics(optimizer, self.every_n_steps) for optimizer in trainer.optimizers
        ]
        self._logged = [0] * len(self.diagnostics)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Log the measurements of steps taken since the last batch."""
        for index, diagnostics in enumerate(self.diagnostics):
            if diagnostics.measured_steps == self._logged[index]:
                continue
            self._logged[index] = diagnostics.measured_steps
            metrics = diagnostics.latest
            if index:
                metrics = {
                    name.replace("descentlab/", f"descentlab/optimizer{index}/", 1): value
                    for name, value in metrics.items()
                }
            pl_module.log_dict(metrics, on_step=True, on_epoch=False)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Detach from the optimizers."""
        for diagnostics in self.diagnostics:
            diagnostics.remove()
        self.diagnostics = []
