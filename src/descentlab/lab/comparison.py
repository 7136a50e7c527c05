"""Run optimizers x problems x seeds, with a fair learning-rate choice, into the store.

Fairness: unless the caller fixes ``lr``, every (optimizer, problem) pair gets a short sweep over
:data:`LR_GRID` (a half-decade log grid) on seed 0 with ``SWEEP_FRACTION`` of the budget; the
learning rate with the best final headline metric (diverged runs rank last) is then used on every
seed. Every other hyperparameter keeps the optimizer's own default. Sweep runs are stored too
(purpose ``"sweep"``), so an interrupted comparison does not repeat them.
"""

from __future__ import annotations

import math
import multiprocessing
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from descentlab.lab.runner import RunResult, run_spec
from descentlab.lab.spec import RunSpec
from descentlab.lab.store import RunStore
from descentlab.problems.registry import get_problem

LR_GRID = (1e-3, 10**-2.5, 1e-2, 10**-1.5, 1e-1, 10**-0.5, 1.0)
"""Learning rates tried by the sweep: 1e-3 to 1 in half decades."""

SWEEP_FRACTION = 0.25
"""Fraction of the run budget each sweep run trains for."""


@dataclass
class ComparisonSummary:
    """What :func:`run_comparison` did: runs trained, runs skipped as already stored, chosen rates."""

    ran: int = 0
    skipped: int = 0
    diverged: int = 0
    chosen_lr: dict[str, dict[str, float]] = field(default_factory=dict)
    run_ids: list[str] = field(default_factory=list)


def _worker_init(worker_setup: Callable[[], None] | None) -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker: N workers on N cores, no oversubscription
    if worker_setup is not None:
        worker_setup()


def _execute(
    specs: list[RunSpec], jobs: int, description: str, worker_setup: Callable[[], None] | None
) -> Iterator[RunResult]:
    """Yield the result of every spec, in completion order, in ``jobs`` processes."""
    progress = tqdm(
        total=len(specs), desc=description, unit="run", disable=not sys.stderr.isatty(), leave=False
    )
    try:
        if jobs <= 1 or len(specs) <= 1:
            for spec in specs:
                yield run_spec(spec)
                progress.update()
            return
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        with context.Pool(min(jobs, len(specs)), initializer=_worker_init, initargs=(worker_setup,)) as pool:
            for result in pool.imap_unordered(run_spec, specs):
                yield result
                progress.update()
    finally:
        progress.close()


def _run_missing(
    store: RunStore,
    specs: list[RunSpec],
    purpose: str,
    jobs: int,
    worker_setup: Callable[[], None] | None,
    summary: ComparisonSummary,
) -> None:
    done = store.completed_run_ids()
    missing = list({spec.run_id: spec for spec in specs if spec.run_id not in done}.values())
    if purpose == "compare":
        summary.skipped += len({spec.run_id for spec in specs}) - len(missing)
    for result in _execute(missing, jobs, purpose, worker_setup):
        store.save(result, purpose)  # the main process is the only writer
        if purpose == "compare":
            summary.ran += 1
            summary.diverged += result.outcome == "diverged"


def _score(outcome: str, summary: dict[str, Any], higher_is_better: bool) -> float:
    """Sweep ranking key, smaller is better; diverged or missing metrics rank last."""
    value = summary.get("final_metric")
    if outcome != "completed" or value is None or not math.isfinite(value):
        return math.inf
    return -value if higher_is_better else value


def _sweep_budget(steps: int | None, epochs: int | None, default_steps: int) -> dict[str, int | None]:
    if epochs is not None:
        return {"steps": None, "epochs": max(1, round(epochs * SWEEP_FRACTION))}
    return {"steps": max(1, round((steps or default_steps) * SWEEP_FRACTION)), "epochs": None}


def run_comparison(
    out_dir: str,
    optimizers: Iterable[str],
    problems: Iterable[str],
    seeds: Iterable[int] = (0, 1, 2),
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    hyperparameters: dict[str, dict[str, Any]] | None = None,
    schedule: dict[str, Any] | None = None,
    lr_grid: Iterable[float] | None = LR_GRID,
    jobs: int = 1,
    worker_setup: Callable[[], None] | None = None,
) -> ComparisonSummary:
    """Train every optimizer on every problem for every seed and store the results in ``out_dir``.

    Args:
        out_dir: results folder holding the store.
        optimizers, problems, seeds: what to compare (names resolved through the registries).
        steps, epochs, batch_size: budget overrides (``None`` keeps each problem's default).
        hyperparameters: per-optimizer keyword arguments ``{optimizer: {name: value}}``; an ``lr``
            here skips the sweep for that optimizer.
        schedule: learning-rate schedule spec applied to every run (see ``schedule_bridge``).
        lr_grid: learning rates for the sweep; ``None`` skips the sweep and uses optimizer defaults.
        jobs: parallel worker processes (1 runs in this process).
        worker_setup: picklable function run once in each worker (e.g. to register extra problems).

    Returns:
        What ran, what was skipped, and the learning rate chosen per problem and optimizer.
    """
    from descentlab.optim.registry import get_optimizer_class

    optimizers = [get_optimizer_class(name).__name__.lower() for name in optimizers]
    problem_objects = [get_problem(name) for name in problems]
    seeds = list(seeds)
    if not optimizers or not problem_objects or not seeds:
        raise ValueError("a comparison needs at least one optimizer, one problem and one seed")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    hyperparameters = {key.lower(): value for key, value in (hyperparameters or {}).items()}
    summary = ComparisonSummary()
    with RunStore(out_dir) as store:
        sweep_specs: dict[tuple[str, str, float], RunSpec] = {}
        grid = list(lr_grid) if lr_grid is not None else []
        for problem in problem_objects:
            for optimizer in optimizers:
                if "lr" in hyperparameters.get(optimizer, {}) or not grid:
                    continue
                budget = _sweep_budget(steps, epochs, problem.budget_steps)
                for lr in grid:
                    sweep_specs[problem.name, optimizer, lr] = RunSpec.create(
                        problem.name,
                        optimizer,
                        {**hyperparameters.get(optimizer, {}), "lr": lr},
                        schedule=schedule,
                        seed=seeds[0],
                        batch_size=batch_size,
                        **budget,
                    )
        _run_missing(store, list(sweep_specs.values()), "sweep", jobs, worker_setup, summary)
        sweep_results = {run["run_id"]: run for run in store.runs("sweep")}
        sweep_table: dict[str, dict[str, dict[str, float | None]]] = {}
        compare_specs = []
        for problem in problem_objects:
            for optimizer in optimizers:
                chosen = dict(hyperparameters.get(optimizer, {}))
                if "lr" not in chosen and grid:
                    scores = {}
                    for lr in grid:
                        run = sweep_results[sweep_specs[problem.name, optimizer, lr].run_id]
                        scores[lr] = _score(run["outcome"], run["summary"], problem.higher_is_better)
                        sweep_table.setdefault(problem.name, {}).setdefault(optimizer, {})[repr(lr)] = (
                            run["summary"].get("final_metric") if run["outcome"] == "completed" else None
                        )
                    # ties (e.g. every rate diverged) go to the smallest rate: the cautious choice
                    chosen["lr"] = min(grid, key=lambda lr: (scores[lr], lr))
                if "lr" in chosen:
                    summary.chosen_lr.setdefault(problem.name, {})[optimizer] = float(chosen["lr"])
                for seed in seeds:
                    compare_specs.append(
                        RunSpec.create(
                            problem.name,
                            optimizer,
                            chosen,
                            schedule=schedule,
                            seed=seed,
                            steps=steps,
                            epochs=epochs,
                            batch_size=batch_size,
                        )
                    )
        summary.run_ids = [spec.run_id for spec in compare_specs]
        store.set_meta(
            "comparison",
            {
                "optimizers": optimizers,
                "problems": [p.name for p in problem_objects],
                "seeds": seeds,
                "chosen_lr": summary.chosen_lr,
                "lr_grid": grid,
                "sweep_fraction": SWEEP_FRACTION,
                "sweep": sweep_table,
                "run_ids": summary.run_ids,
            },
        )
        _run_missing(store, compare_specs, "compare", jobs, worker_setup, summary)
    return summary
