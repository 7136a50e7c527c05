"""Run optimizers x problems x configurations x seeds, with a fair learning-rate choice, into the store.

A comparison is named (``name``); its settings apply to every run (``settings``: ``--set``), and
``vary`` makes one configuration per value (several give their product). Keys are those of
:mod:`descentlab.lab.fields`; ``Optimizer.key`` applies to one optimizer only.

Fairness: unless a configuration fixes ``lr``, it gets a sweep over :data:`LR_GRID` (half decades) on
the first seed with ``SWEEP_FRACTION`` of the budget, selected on the **validation** metric (diverged
runs rank last; rates whose results tie within the float resolution count as equally good and the
middle one of them is taken). When the chosen rate is at an edge of the grid, the grid grows by one
half decade beyond that edge, round after round, until the choice is interior or the bound
``[LR_MIN, LR_MAX]`` is reached; a choice left at an edge is flagged (``edge``) and the report warns.
The chosen rate then runs on every seed. Sweep runs are stored too (purpose ``"sweep"``), so an
interrupted comparison does not repeat them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import multiprocessing
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from descentlab.lab.fields import SettingError, resolve_for_optimizer, split_settings
from descentlab.lab.labels import configuration_label
from descentlab.lab.live_log import LiveLogRunner
from descentlab.lab.progress import Progress
from descentlab.lab.runner import RunResult, check_spec, run_spec
from descentlab.lab.spec import RunSpec
from descentlab.lab.store import COMPARISON_PREFIX, RunStore
from descentlab.lab.verdicts import resolution
from descentlab.optim.registry import get_optimizer_class
from descentlab.problems.base import Problem
from descentlab.problems.registry import get_problem

LR_GRID = tuple(10 ** (k / 2) for k in range(-6, 2))
"""Learning rates tried first: 1e-3 to 10**0.5 (3.16) in half decades; reaches the textbook rates
(SGD 0.95, Momentum 0.1, AdaGrad 1.5, Adam 0.3 on the bowl)."""

LR_MIN, LR_MAX = 1e-6, 1e3
"""The sweep never extends beyond these rates."""

SWEEP_FRACTION = 0.15
"""Fraction of the run budget each sweep run trains for (0.15 keeps `make demo` under 3 minutes on 2
cores; with 8 or more rates a sweep then costs about 1.2 seeded runs)."""

SWEEP_EVALUATIONS = 5
"""Validation evaluations of a sweep run: it is ranked on its final one, so a few suffice."""

Runner = Callable[[RunSpec], RunResult]
PoolFactory = Callable[[int, Callable[..., None], tuple], Any]
"""Starts the workers of a comparison: ``(jobs, initializer, initargs) -> pool``, the pool offering
``apply_async(runner, (spec,), callback, error_callback)``, ``terminate()`` and ``join()`` as a
``multiprocessing`` pool does (:class:`descentlab.lab.executors.RayPool` runs the specs as Ray tasks)."""


@dataclass
class Configuration:
    """One configuration of a comparison: a template spec (seed 0) and how its ``lr`` was chosen."""

    problem: Problem
    optimizer: str
    template: RunSpec
    swept: bool
    grid: list[float] = field(default_factory=list)
    chosen_lr: float | None = None
    edge: str | None = None
    sweep: dict[str, float | None] = field(default_factory=dict)

    def spec(self, seed: int, lr: float | None = None, *, sweep: bool = False) -> RunSpec:
        """The run of this configuration on ``seed`` (a sweep run when ``sweep``)."""
        hyperparameters = dict(self.template.hyperparameters)
        if lr is not None:
            hyperparameters["lr"] = lr
        budget = _sweep_budget(self.template, self.problem) if sweep else {}
        return RunSpec.create(
            self.template.problem,
            self.template.optimizer,
            hyperparameters,
            variant=self.template.variant,
            schedule=self.template.schedule_dict,
            seed=seed,
            steps=budget.get("steps", self.template.steps),
            epochs=budget.get("epochs", self.template.epochs),
            batch_size=self.template.batch_size,
            techniques=self.template.technique_dict,
            model=self.template.model_dict,
            record={"evaluations": SWEEP_EVALUATIONS} if sweep else self.template.record_dict,
            data=self.template.data,
        )


@dataclass
class ComparisonSummary:
    """What :func:`run_comparison` did: runs trained here, skipped (stored already, or meanwhile by
    another process sharing the folder), diverged, and the configurations."""

    name: str = ""
    ran: int = 0
    skipped: int = 0
    diverged: int = 0
    configurations: list[Configuration] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)

    @property
    def chosen_lr(self) -> dict[str, dict[str, float]]:
        """``{problem: {optimizer: lr}}`` for comparisons with one configuration per pair."""
        table: dict[str, dict[str, float]] = {}
        for configuration in self.configurations:
            if configuration.chosen_lr is not None:
                table.setdefault(configuration.problem.name, {})[configuration.optimizer] = (
                    configuration.chosen_lr
                )
        return table


def _sweep_budget(template: RunSpec, problem: Problem) -> dict[str, int | None]:
    if template.epochs is not None:
        return {"steps": None, "epochs": max(1, round(template.epochs * SWEEP_FRACTION))}
    return {"steps": max(1, round((template.steps or problem.budget_steps) * SWEEP_FRACTION)), "epochs": None}


def _worker_init(worker_setup: Callable[[], None] | None) -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker: N workers on N cores, no oversubscription
    if worker_setup is not None:
        worker_setup()


CLAIM_POLL_SECONDS = 0.5
"""How often a process whose remaining runs are all claimed by others looks whether they are stored."""


def process_pool(jobs: int, initializer: Callable[..., None], initargs: tuple) -> Any:
    """A pool of ``jobs`` worker processes on this machine (the default :data:`PoolFactory`)."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method).Pool(jobs, initializer=initializer, initargs=initargs)


@dataclass
class _Executor:
    """Runs what the store lacks, with progress, counting into the summary.

    Each run is claimed in the store right before it starts (:meth:`RunStore.claim`), so processes
    sharing a folder split the work; runs another process claimed are waited for, since the next
    round (the sweep's choice, the report) needs them. Worker processes are started once and serve
    every round of the comparison (sweep, its growth rounds, the seeded runs): each start costs
    imports and data loading in every worker. Without a ``pool_factory``, one job (or a lone spec)
    trains in this process; with one, every spec goes to its pool.
    """

    store: RunStore
    jobs: int
    runner: Runner
    worker_setup: Callable[[], None] | None
    summary: ComparisonSummary
    pool_factory: PoolFactory | None = None
    pool: Any = None

    def _submit(self, spec: RunSpec, finished: queue.SimpleQueue, parallel: bool) -> None:
        """Train ``spec`` here or in a worker; its result (or exception) arrives in ``finished``."""
        if not parallel:
            finished.put(self.runner(spec))
            return
        if self.pool is None:
            self.pool = (self.pool_factory or process_pool)(self.jobs, _worker_init, (self.worker_setup,))
        self.pool.apply_async(self.runner, (spec,), callback=finished.put, error_callback=finished.put)

    def _results(self, specs: list[RunSpec]) -> Iterator[RunResult | None]:
        """Yield the result of every spec this process trains, and ``None`` for each one another
        process stored meanwhile, in completion order."""
        parallel = self.pool_factory is not None or (
            self.jobs > 1 and (len(specs) > 1 or self.pool is not None)
        )
        pending = {spec.run_id: spec for spec in specs}
        finished: queue.SimpleQueue = queue.SimpleQueue()
        in_flight = 0
        while pending or in_flight:
            while in_flight < self.jobs and (run_id := self.store.claim(pending)) is not None:
                self._submit(pending.pop(run_id), finished, parallel)
                in_flight += 1
            if in_flight:
                in_flight -= 1
                result = finished.get()
                if isinstance(result, BaseException):
                    raise result
                yield result
                continue
            stored = self.store.completed_run_ids() & set(pending)
            for run_id in stored:
                del pending[run_id]
                yield None
            if pending and not stored:
                time.sleep(CLAIM_POLL_SECONDS)  # the rest trains elsewhere, or its claims expire

    def close(self) -> None:
        """Stop the worker processes."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def run(self, specs: Iterable[RunSpec], purpose: str) -> None:
        """Train every spec the store lacks (longest first) and store it under ``purpose``."""
        specs = list({spec.run_id: spec for spec in specs}.values())
        done = self.store.completed_run_ids()
        # longest first: no core idles at the end behind one long run, and the ETA errs on the safe side
        missing = sorted(
            (spec for spec in specs if spec.run_id not in done), key=_expected_cost, reverse=True
        )
        if purpose == "compare":
            self.summary.skipped += len(specs) - len(missing)
        progress = Progress(len(missing), purpose)
        try:
            for result in self._results(missing):
                if result is not None:  # None: another process sharing the folder stored it
                    self.store.save(result, purpose)  # the main thread is this process's only writer
                progress.update()
                if purpose == "compare":
                    self.summary.ran += result is not None
                    self.summary.skipped += result is None
                    self.summary.diverged += result is not None and result.outcome != "completed"
        finally:
            progress.close()


def _expected_cost(spec: RunSpec) -> float:
    """A rough relative cost of a run: its step budget (the problem's default for epoch budgets), a
    learning problem's step counting four."""
    problem = get_problem(spec.problem)
    steps = spec.steps or problem.budget_steps
    return steps * (4 if problem.kind == "learning" else 1)


def _score(run: dict[str, Any], higher_is_better: bool) -> float:
    """Sweep ranking key on the validation metric, smaller is better; diverged or missing rank last."""
    value = run["summary"].final_metric
    if run["outcome"] != "completed" or value is None or not math.isfinite(value):
        return math.inf
    return -value if higher_is_better else value


def metric_tolerance(problem: Problem, summaries: Iterable[Any]) -> float:
    """The difference below which two values of the problem's metric tie (float resolution).

    Loss-like metrics scale with the loss at the start; accuracies are counts and tie only when equal.
    """
    if problem.higher_is_better:
        return 0.0
    summaries = list(summaries)
    scale = max((abs(s.initial_loss) for s in summaries if s.initial_loss is not None), default=0.0)
    dtype = next((s.dtype for s in summaries), "float32")
    return resolution(dtype, scale)


def choose_rate(scores: Mapping[float, float], tolerance: float) -> float:
    """The middle of the rates that tie with the best score (the smallest rate when all diverged)."""
    rates = sorted(scores)
    best = min(scores.values())
    if not math.isfinite(best):
        return rates[0]
    tied = [lr for lr in rates if scores[lr] - best <= tolerance]
    return tied[len(tied) // 2]


def _next_rate(grid: list[float], edge: str) -> float | None:
    """One half decade beyond ``edge``; rates on the half-decade lattice stay exactly on it."""
    rate = grid[0] if edge == "low" else grid[-1]
    half_decades = 2 * math.log10(rate)
    direction = -1 if edge == "low" else 1
    if abs(half_decades - round(half_decades)) < 1e-9:
        rate = 10 ** ((round(half_decades) + direction) / 2)
    else:
        rate *= 10 ** (direction / 2)
    return rate if LR_MIN * (1 - 1e-9) <= rate <= LR_MAX * (1 + 1e-9) else None


def _sweep(
    configurations: list[Configuration], executor: _Executor, seed: int, grid: Sequence[float]
) -> None:
    """Sweep every configuration that has no fixed ``lr``, growing grids until choices are interior."""
    pending = [c for c in configurations if c.swept]
    for configuration in pending:
        configuration.grid = sorted(grid)
    while pending:
        executor.run((c.spec(seed, lr, sweep=True) for c in pending for lr in c.grid), "sweep")
        stored = {run["run_id"]: run for run in executor.store.runs("sweep")}
        still_pending = []
        for configuration in pending:
            higher = configuration.problem.higher_is_better
            runs = {lr: stored[configuration.spec(seed, lr, sweep=True).run_id] for lr in configuration.grid}
            tolerance = metric_tolerance(configuration.problem, [run["summary"] for run in runs.values()])
            scores = {lr: _score(run, higher) for lr, run in runs.items()}
            chosen = choose_rate(scores, tolerance)
            configuration.chosen_lr = chosen
            configuration.sweep = {
                repr(lr): run["summary"].final_metric if run["outcome"] == "completed" else None
                for lr, run in runs.items()
            }
            edge = (
                "low"
                if chosen == configuration.grid[0]
                else "high"
                if chosen == configuration.grid[-1]
                else None
            )
            configuration.edge = edge
            rate = _next_rate(configuration.grid, edge) if edge else None
            if rate is not None:
                configuration.grid = sorted([*configuration.grid, rate])
                still_pending.append(configuration)
        pending = still_pending


def _combinations(vary: Sequence[tuple[str, Sequence[Any]]]) -> list[dict[str, Any]]:
    keys = [key for key, _ in vary]
    if len(set(keys)) != len(keys):
        raise SettingError(f"each key may be varied once; got {keys}")
    for key, values in vary:
        if not values:
            raise SettingError(f"--vary {key}= needs at least one value")
    return [dict(zip(keys, values)) for values in itertools.product(*(values for _, values in vary))]


def build_configurations(
    optimizers: Sequence[str],
    problems: Sequence[Problem],
    settings: Mapping[str, Any],
    vary: Sequence[tuple[str, Sequence[Any]]],
    sweep: bool,
) -> list[Configuration]:
    """Every configuration of the comparison, each with its template spec (all settings parsed)."""
    configurations = []
    for problem in problems:
        for optimizer in optimizers:
            cls = get_optimizer_class(optimizer)
            for combination in _combinations(vary):
                flat = resolve_for_optimizer({**settings, **combination}, optimizer)
                parts = split_settings(flat, cls, problem.options)
                template = RunSpec.create(
                    problem.name,
                    optimizer,
                    parts.hyperparameters,
                    variant=parts.variant,
                    schedule=parts.schedule or None,
                    seed=0,
                    techniques=parts.techniques,
                    model=canonical_model_options(problem, parts.model),
                    record=parts.record,
                    **parts.budget,
                )
                configurations.append(
                    Configuration(
                        problem, optimizer, template, swept=sweep and "lr" not in parts.hyperparameters
                    )
                )
    seen: dict[str, Configuration] = {}
    for configuration in configurations:
        seen.setdefault(configuration.template.configuration_id, configuration)
    return list(seen.values())


def canonical_model_options(problem: Problem, given: Mapping[str, Any]) -> dict[str, Any]:
    """The model options in the problem's canonical spelling, defaults left out.

    ``init=xavier`` and ``init=glorot`` are one configuration, and ``dropout=0`` is the default model.
    """
    if not given:
        return {}
    resolved = problem.resolve_options(given)
    return {key: resolved[key] for key in given if resolved[key] != problem.options[key]}


def default_name(optimizers: Sequence[str], problems: Sequence[str], settings: Any, vary: Any) -> str:
    """A stable name for an unnamed comparison: the same arguments resume the same comparison."""
    text = json.dumps([list(optimizers), list(problems), settings, vary], sort_keys=True, default=str)
    return "auto-" + hashlib.sha256(text.encode()).hexdigest()[:8]


def run_comparison(
    out_dir: str,
    optimizers: Iterable[str],
    problems: Iterable[str],
    seeds: Iterable[int] = (0, 1, 2),
    *,
    settings: Mapping[str, Any] | None = None,
    vary: Sequence[tuple[str, Sequence[Any]]] = (),
    lr_grid: Iterable[float] | None = LR_GRID,
    name: str | None = None,
    jobs: int = 1,
    runner: Runner = run_spec,
    worker_setup: Callable[[], None] | None = None,
    log: Sequence[str] = (),
    pool_factory: PoolFactory | None = None,
) -> ComparisonSummary:
    """Train every configuration of every optimizer on every problem for every seed into ``out_dir``.

    Args:
        out_dir: results folder holding the store.
        optimizers, problems, seeds: what to compare (names resolved through the registries).
        settings: ``{key: value}`` for every run (``Optimizer.key`` for one optimizer); an ``lr``
            fixes the rate and skips the sweep.
        vary: ``[(key, values), ...]``: one configuration per value, several keys give their product.
        lr_grid: first learning rates of the sweep; ``None`` skips the sweep (optimizer defaults).
        name: the comparison's name in the folder (default: derived from the arguments).
        jobs: parallel worker processes (1 runs in this process).
        runner: trains one spec (a seam for tests; must be picklable when ``jobs > 1`` or with a pool).
        worker_setup: picklable function run once in each worker (e.g. to register extra problems).
        log: live logs to write while runs train (:mod:`descentlab.lab.live_log`: ``csv``,
            ``tensorboard``), under the comparison's name; they need the default ``runner``.
        pool_factory: starts the workers instead of local processes (see :data:`PoolFactory`); the
            results are stored here, by this process, exactly as the process pool's are.

    Returns:
        What ran, what was skipped, and every configuration with its chosen rate.
    """
    optimizers = [get_optimizer_class(name_).__name__.lower() for name_ in optimizers]
    problem_objects = [get_problem(problem) for problem in problems]
    seeds = list(seeds)
    if not optimizers or not problem_objects or not seeds:
        raise ValueError("a comparison needs at least one optimizer, one problem and one seed")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    settings = dict(settings or {})
    grid = list(lr_grid) if lr_grid is not None else []
    configurations = build_configurations(optimizers, problem_objects, settings, vary, sweep=bool(grid))
    for configuration in configurations:  # fail on a bad configuration before hours of work
        check_spec(configuration.spec(seeds[0], grid[0] if configuration.swept else None))
    name = name or default_name(optimizers, [p.name for p in problem_objects], settings, vary)
    summary = ComparisonSummary(name=name, configurations=configurations)
    if log:
        if runner is not run_spec:
            raise ValueError("log needs the default runner (run_spec), which it wraps")
        runner = LiveLogRunner(str(out_dir), tuple(log), name)
    with RunStore(out_dir) as store:
        executor = _Executor(store, jobs, runner, worker_setup, summary, pool_factory)
        try:
            _sweep(configurations, executor, seeds[0], grid)
            compare_specs = [c.spec(seed, c.chosen_lr) for c in configurations for seed in seeds]
            summary.run_ids = [spec.run_id for spec in compare_specs]
            store.set_meta(COMPARISON_PREFIX + name, _comparison_meta(summary, seeds, settings, vary, grid))
            executor.run(compare_specs, "compare")
        finally:
            executor.close()
    return summary


def _comparison_meta(
    summary: ComparisonSummary, seeds: list[int], settings: dict[str, Any], vary: Any, grid: list[float]
) -> dict[str, Any]:
    return {
        "name": summary.name,
        "optimizers": sorted({c.optimizer for c in summary.configurations}),
        "problems": list(dict.fromkeys(c.problem.name for c in summary.configurations)),
        "seeds": seeds,
        "settings": {key: str(value) for key, value in settings.items()},
        "vary": [[key, [str(v) for v in values]] for key, values in vary],
        "lr_grid": grid,
        "lr_bounds": [LR_MIN, LR_MAX],
        "sweep_fraction": SWEEP_FRACTION,
        "configurations": [
            {
                "configuration_id": c.spec(seeds[0], c.chosen_lr).configuration_id,
                "label": configuration_label(c.spec(seeds[0], c.chosen_lr)),
                "problem": c.problem.name,
                "optimizer": c.optimizer,
                "swept": c.swept,
                "lr": c.chosen_lr if c.swept else c.template.hyperparameter_dict.get("lr"),
                "edge": c.edge,
                "sweep": c.sweep,
                "run_ids": [c.spec(seed, c.chosen_lr).run_id for seed in seeds],
            }
            for c in summary.configurations
        ],
        "run_ids": summary.run_ids,
    }
