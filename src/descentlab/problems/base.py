"""What a problem is: the contract between :mod:`descentlab.problems` and the lab.

A :class:`Problem` is a description (name, kind, default budget, target, known optimum, model
options) that builds a :class:`Task` for a given seed. The same seed gives the same data, the same
initial parameters and the same minibatch order whatever optimizer trains it, so comparisons between
optimizers are paired. :meth:`Problem.fingerprint` identifies the problem together with its data, so
stored results can be tied to what produced them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

ProblemKind = Literal["function2d", "model", "learning"]


@dataclass
class Task:
    """One seeded instance of a problem, ready to train.

    Attributes:
        model: the module whose ``parameters()`` the optimizer updates (for a 2-D function, a module
            holding one parameter of shape ``(2,)``).
        batches: an endless iterator of minibatches in a seed-determined order (``None`` items for
            full-batch problems such as the 2-D functions).
        loss: maps a minibatch to the scalar training loss of ``model`` on it (differentiable).
        evaluate: returns validation metrics as a dict; the problem's ``metric`` names the headline key.
        steps_per_epoch: minibatches in one pass over the training data (1 for full-batch problems).
        evaluate_train: the same metrics as ``evaluate`` on a fixed subset of the training data (at
            most 1000 examples, chosen once per data set and identical for every seed); ``None`` where
            the problem has no separate training data (2-D functions, textbook models, noisy quadratic).
        evaluate_test: the same metrics on the held-out test split; ``None`` without one.
        epoch_batches: returns one pass over the whole training set in a fixed order, as minibatches of
            the task's batch size (or the single full batch), such that the mean of ``loss(batch)``
            weighted by batch size equals the full training loss (SVRG's full-gradient snapshot).
            ``None`` where there is no finite training set (noisy 2-D functions, noisy quadratic):
            SVRG cannot run there.
    """

    model: nn.Module
    batches: Iterator[Any]
    loss: Callable[[Any], torch.Tensor]
    evaluate: Callable[[], dict[str, float]]
    steps_per_epoch: int = 1
    evaluate_train: Callable[[], dict[str, float]] | None = None
    evaluate_test: Callable[[], dict[str, float]] | None = None
    epoch_batches: Callable[[], Iterable[Any]] | None = None


@dataclass(frozen=True)
class OptionDomain:
    """The values one model option accepts.

    Attributes:
        description: the allowed values in words, quoted in error messages (``"a float in [0, 1)"``).
        canonical: maps an accepted value to its canonical form (``"xavier"`` -> ``"glorot"``, ``0`` ->
            ``0.0``) and raises ``ValueError`` or ``TypeError`` for any other value.
    """

    description: str
    canonical: Callable[[Any], Any]


@dataclass(frozen=True)
class Problem:
    """A registered problem: a description plus a factory of seeded :class:`Task` objects.

    Attributes:
        name: registry key used on the command line (``bowl``, ``rosenbrock``, ``digits-mlp``, ...).
        summary: one line shown by ``descentlab problems``.
        kind: ``"function2d"`` (a 2-D test function), ``"model"`` (a textbook model fitted by least
            squares) or ``"learning"`` (a data set with train/validation/test splits, or the noisy
            quadratic).
        make_task: ``make_task(seed, batch_size)`` builds the task; ``batch_size=None`` uses the default.
            A problem that declares ``options`` gets them as keywords:
            ``make_task(seed, batch_size, **options)``.
        budget_steps: default number of optimizer steps.
        batch_size: default minibatch size (``None`` for full-batch problems).
        metric: key of ``Task.evaluate()`` reported as the headline metric.
        higher_is_better: whether a larger ``metric`` is better (accuracy) or worse (loss).
        target: value of ``metric`` that counts as "reached" for steps/seconds-to-target.
        optimum: the known minimum of the training loss, where known.
        function: for ``function2d`` (and 2-parameter ``model``) problems, the loss as a function of a
            ``(..., 2)`` tensor, vectorised over leading dimensions, for contour plots.
        bounds: plotting window ``((x_min, x_max), (y_min, y_max))`` for 2-D problems.
        minima: known minimisers of 2-D problems, for marking on plots.
        start: the canonical initial point of 2-D problems (the one seed 0 uses).
        tags: free-form labels (``"noisy"``, ``"textbook"``, ``"default"``).
        deterministic: ``True`` when the task would be identical for every seed (fixed start, full
            batch, no noise): the plain 2-D functions and the textbook models. So that seeds still
            replicate something, seed 0 starts at the canonical ``start`` and seed ``k > 0`` at
            :func:`~descentlab.problems.seeding.perturbed_start` (``start`` plus a per-axis normal
            offset with standard deviation 5 % of that axis' ``bounds`` width, drawn from a generator
            seeded by ``k``, clamped into ``bounds``).
        options: the model options the problem supports, with their defaults (empty: none).
        option_domains: for each option, the values it accepts (an option without a domain accepts
            any value).
        version: bump when the problem changes in a way that makes old results incomparable.
        data_fingerprint: returns a hash of the data the problem trains on (``None``: no data to hash).
    """

    name: str
    summary: str
    kind: ProblemKind
    make_task: Callable[..., Task]
    budget_steps: int
    batch_size: int | None = None
    metric: str = "loss"
    higher_is_better: bool = False
    target: float | None = None
    optimum: float | None = None
    function: Callable[[torch.Tensor], torch.Tensor] | None = None
    bounds: tuple[tuple[float, float], tuple[float, float]] | None = None
    minima: tuple[tuple[float, float], ...] = ()
    start: tuple[float, float] | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    deterministic: bool = False
    # Mappings are unhashable; leaving them out of the hash keeps Problem hashable as before.
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    option_domains: Mapping[str, OptionDomain] = field(default_factory=dict, hash=False)
    version: int = 1
    data_fingerprint: Callable[[], str] | None = None
    _fingerprint_cache: dict[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        undeclared = sorted(set(self.option_domains) - set(self.options))
        if undeclared:
            raise ValueError(
                f"problem {self.name!r}: option_domains names {undeclared}, which are not in options "
                f"{sorted(self.options)}"
            )

    def resolve_options(self, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The problem's default options updated by ``options``, validated and in canonical form.

        Raises:
            ValueError: an option the problem does not declare (the message lists the allowed ones),
                or a value outside the option's domain (naming option, value and allowed values).
        """
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = (
                f"allowed options: {', '.join(sorted(self.options))}"
                if self.options
                else "it accepts no model options"
            )
            raise ValueError(f"problem {self.name!r} has no model option {', '.join(unknown)}; {allowed}")
        merged = {**self.options, **options}
        for name, value in options.items():
            domain = self.option_domains.get(name)
            if domain is None:
                continue
            try:
                merged[name] = domain.canonical(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"option {name!r} of problem {self.name!r} must be {domain.description}, got {value!r}"
                ) from None
        return merged

    def task(
        self, seed: int = 0, batch_size: int | None = None, options: Mapping[str, Any] | None = None
    ) -> Task:
        """Build the seeded task (``batch_size=None`` keeps the problem's default).

        ``options`` override the defaults in :attr:`options` (see :meth:`resolve_options`).
        """
        batch_size = batch_size if batch_size is not None else self.batch_size
        merged = self.resolve_options(options)
        if not self.options:
            return self.make_task(seed, batch_size)
        return self.make_task(seed, batch_size, **merged)

    def fingerprint(self) -> str:
        """16 hex digits of a SHA-256 over the problem's identity and its data (cached per process).

        Covers ``name``, ``version``, ``kind``, ``budget_steps``, ``batch_size``, the option defaults
        and :attr:`data_fingerprint`; results stored under one fingerprint came from the same problem
        on the same data.
        """
        if "value" not in self._fingerprint_cache:
            identity = {
                "name": self.name,
                "version": self.version,
                "kind": self.kind,
                "budget_steps": self.budget_steps,
                "batch_size": self.batch_size,
                "options": dict(self.options),
                "data": self.data_fingerprint() if self.data_fingerprint is not None else None,
            }
            encoded = json.dumps(identity, sort_keys=True, default=repr).encode()
            self._fingerprint_cache["value"] = hashlib.sha256(encoded).hexdigest()[:16]
        return self._fingerprint_cache["value"]
