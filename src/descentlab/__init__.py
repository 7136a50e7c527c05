"""descentlab: optimizers, schedules, training techniques, analysis tools and a lab for gradient descent.

Subpackages (import what you need; nothing heavy is imported here):

- :mod:`descentlab.optim` -- drop-in ``torch.optim.Optimizer`` classes built from small update rules.
- :mod:`descentlab.schedules` -- learning-rate and hyperparameter schedules.
- :mod:`descentlab.training` -- clipping, max-norm, L1/L2, freezing, MC dropout, init, checkpoints.
- :mod:`descentlab.analysis` -- Hessians, loss landscapes, LR range test.
- :mod:`descentlab.problems` -- 2-D test functions, textbook models and small data sets.
- :mod:`descentlab.lab` -- runs, results store, reports (driven by the ``descentlab`` command).

- :func:`descentlab.create_optimizer` -- an optimizer for a model in one call (``descentlab.training``).
- :mod:`descentlab.integrations` -- Lightning, Hugging Face and timm (each imported only when used).

Shared mechanisms, one implementation each: :mod:`descentlab.atomic` (every file descentlab writes) and
:mod:`descentlab.autodiff` (Hessian-vector products, for ``optim.Newton`` and ``analysis``).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # create_optimizer lives in descentlab.training; importing it lazily keeps `import descentlab` light.
    if name == "create_optimizer":
        from descentlab.training.optimizer_factory import create_optimizer

        return create_optimizer
    raise AttributeError(f"module 'descentlab' has no attribute {name!r}")
