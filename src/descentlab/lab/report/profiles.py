"""Time to target and performance profiles over the problems of a tune (or of a multi-problem comparison).

**Targets** (per problem, on the validation metric: the only one recorded during training). Each
configuration's *level* is the lower median over its seeds of its final validation metric (a diverged
seed counts as the worst value); the lower median (the ``ceil(n/2)``-th best) is a value that at least
half of the seeds reach. The **strict** target is the best level of any configuration, so the
configuration that sets it reaches it on at least half its seeds. The **relaxed** target lies
:data:`RELAXED_FRACTION` of the way back from the strict target towards the initial metric (the median
over the problem's runs at step 0): with accuracy 0.1 at the start and a strict target of 0.95, the
relaxed target is 0.865 (90 % of the gain).

**Time to target** of one run: the steps, gradient evaluations (minibatch units) and training seconds
at the first validation evaluation whose metric is at or past the target (``inf`` when none is, so a
cost is rounded up to the evaluation grid). A run that diverged after reaching the target did reach it.
The cost of a configuration on a problem is the lower median of its runs' costs: finite exactly when at
least half the seeds reached the target.

**Performance profile** (Dolan & Moré 2002, "Benchmarking optimization software with performance
profiles", https://arxiv.org/abs/cs/0102001): with cost ``t[p, s]`` of solver ``s`` on problem ``p``,
the ratio ``r[p, s] = t[p, s] / min_s t[p, s]`` and ``rho_s(tau) = |{p : r[p, s] <= tau}| / P`` for
``tau`` in ``[1, TAU_MAX]``. A problem no solver reached has ratio ``inf`` for all; when the best cost is
0 (the target was met at the start) a solver at 0 has ratio 1 and every other ``inf``. The **score** is
the area under ``rho_s`` over ``[1, TAU_MAX]`` divided by ``TAU_MAX - 1``, so 1 means fastest on every
problem and 0 never within ``TAU_MAX`` times the fastest; it equals the mean over problems of
``max(0, TAU_MAX - r[p, s]) / (TAU_MAX - 1)``.

**Intervals**: the 95 % percentile bootstrap over seeds: each resample redraws the seeds of every
(problem, solver) with replacement, recomputes the lower-median costs, the ratios, the profile and the
score. The targets stay fixed (they define the question, not its answer). The generator seed is fixed,
so the report is reproducible.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from descentlab.lab.labels import optimizer_display_name
from descentlab.lab.records import StepRecord
from descentlab.lab.report.data import ProblemRuns, Section
from descentlab.lab.verdicts import DEFAULT_RESAMPLES, INTERVAL_LEVEL

RELAXED_FRACTION = 0.1
"""The relaxed target gives back this fraction of the way from the initial metric to the strict one."""

TAU_MAX = 4.0
"""Profiles run over ``tau`` in ``[1, TAU_MAX]``: four times the fastest is slow enough to call a miss."""

PROFILE_POINTS = 301
"""``tau`` points of the drawn profiles and their bands (steps of 0.01 on [1, 4])."""

COST_FIELDS = {"steps": "step", "gradient_evaluations": "gradient_evaluations", "seconds": "seconds"}
"""What reaching a target costs, each a profile of its own: name -> :class:`StepRecord` field."""

COSTS = tuple(COST_FIELDS)

TARGET_KINDS = ("strict", "relaxed")


def lower_median(values: Sequence[float]) -> float:
    """The ``ceil(n/2)``-th smallest value (``inf`` allowed): at least half the values are at or below it.

    >>> lower_median([3.0, 1.0, math.inf, 2.0])
    2.0
    """
    if len(values) == 0:
        raise ValueError("lower_median needs at least one value, got none")
    return float(sorted(values)[(len(values) - 1) // 2])


def _oriented(value: float | None, higher_is_better: bool) -> float:
    """``value`` as a cost (lower is better); missing or non-finite values are the worst, ``inf``."""
    if value is None or not math.isfinite(value):
        return math.inf
    return -value if higher_is_better else value


def _from_oriented(value: float, higher_is_better: bool) -> float:
    return -value if higher_is_better else value


def time_to_target(
    records: Sequence[StepRecord], metric: str, target: float, higher_is_better: bool
) -> dict[str, float]:
    """Steps, gradient evaluations and seconds at the first record whose ``metric`` reaches ``target``.

    Returns ``{cost: value}`` for every name of :data:`COSTS`, all ``inf`` when no record reaches it.
    """
    goal = _oriented(target, higher_is_better)
    for record in records:
        value = (record.metrics or {}).get(metric)
        if _oriented(value, higher_is_better) <= goal:
            return {cost: float(getattr(record, name)) for cost, name in COST_FIELDS.items()}
    return dict.fromkeys(COSTS, math.inf)


def performance_ratios(costs: np.ndarray) -> np.ndarray:
    """``costs / best cost`` over the last axis (solvers), with the module's rules for ``inf`` and 0.

    Args:
        costs: ``(..., problems, solvers)``, each value ``>= 0`` or ``inf`` (not reached).
    """
    costs = np.asarray(costs, dtype=np.float64)
    bad = np.isnan(costs) | (costs < 0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"costs must be >= 0 or inf, got {costs[where]} at index {where}")
    best = costs.min(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(best > 0, costs / np.where(best > 0, best, 1.0), np.where(costs == 0, 1.0, np.inf))
    return np.where(np.isfinite(costs), ratios, np.inf)


def performance_profile(costs: np.ndarray, taus: Sequence[float]) -> np.ndarray:
    """``rho[..., s, k]``: the share of problems where solver ``s`` is within ``taus[k]`` of the best.

    ``costs`` is ``(..., problems, solvers)``; ``taus`` must be ascending.
    """
    taus = np.asarray(taus, dtype=np.float64)
    if taus.ndim != 1 or np.any(np.diff(taus) < 0):
        raise ValueError(f"taus must be a 1-D ascending sequence, got {taus.tolist()}")
    ratios = np.moveaxis(performance_ratios(costs), -2, -1)  # (..., solvers, problems)
    # Each ratio counts from the first tau at or above it on: a histogram over the taus, summed up.
    # One pass over the ratios instead of one per tau (the bootstrap has thousands of resamples).
    first = np.searchsorted(taus, ratios, side="left")
    rows = np.arange(first[..., 0].size).reshape(first.shape[:-1])[..., None]
    counts = np.bincount((rows * (len(taus) + 1) + first).ravel(), minlength=rows.size * (len(taus) + 1))
    counts = counts.reshape(*first.shape[:-1], len(taus) + 1)[..., :-1]
    return np.cumsum(counts, axis=-1) / ratios.shape[-1]


def profile_score(costs: np.ndarray) -> np.ndarray:
    """Area under each solver's profile over ``[1, TAU_MAX]``, normalised to ``[0, 1]`` (closed form)."""
    ratios = performance_ratios(costs)
    return np.clip(TAU_MAX - ratios, 0.0, None).mean(axis=-2) / (TAU_MAX - 1.0)


@dataclass(frozen=True)
class ProfileEstimate:
    """One performance profile with its bootstrap bands, and the scores with their intervals.

    ``rho``, ``rho_low``, ``rho_high``: ``(solvers, len(taus))``; ``score*``: ``(solvers,)``.
    """

    taus: np.ndarray
    rho: np.ndarray
    rho_low: np.ndarray
    rho_high: np.ndarray
    score: np.ndarray
    score_low: np.ndarray
    score_high: np.ndarray


def _resampled_costs(
    seed_costs: Sequence[Sequence[Sequence[float]]], resamples: int, seed: int
) -> np.ndarray:
    """``(resamples, problems, solvers)`` lower-median costs, each over seeds redrawn with replacement."""
    generator = np.random.default_rng(seed)
    problems, solvers = len(seed_costs), len(seed_costs[0]) if seed_costs else 0
    costs = np.empty((resamples, problems, solvers))
    for p, row in enumerate(seed_costs):
        for s, values in enumerate(row):
            values = np.asarray(values if len(values) else [math.inf], dtype=np.float64)
            draws = np.sort(values[generator.integers(0, len(values), (resamples, len(values)))], axis=1)
            costs[:, p, s] = draws[:, (len(values) - 1) // 2]
    return costs


def bootstrap_profile(
    seed_costs: Sequence[Sequence[Sequence[float]]],
    *,
    taus: Sequence[float] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> ProfileEstimate:
    """The profile and score of per-seed costs ``seed_costs[problem][solver]`` (a solver with no runs on a
    problem: empty, counted as not reached), with 95 % bootstrap intervals over seeds."""
    if not seed_costs or len({len(row) for row in seed_costs}) != 1 or not seed_costs[0]:
        raise ValueError("seed_costs must be a non-empty list of problems, each with the same solvers")
    taus = np.linspace(1.0, TAU_MAX, PROFILE_POINTS) if taus is None else np.asarray(taus, dtype=float)
    point = np.array([[lower_median(v) if len(v) else math.inf for v in row] for row in seed_costs])
    resampled = _resampled_costs(seed_costs, resamples, seed)
    tail = (1.0 - INTERVAL_LEVEL) / 2.0
    rho_low, rho_high = np.quantile(performance_profile(resampled, taus), [tail, 1 - tail], axis=0)
    score_low, score_high = np.quantile(profile_score(resampled), [tail, 1 - tail], axis=0)
    return ProfileEstimate(
        taus=taus,
        rho=performance_profile(point, taus),
        rho_low=rho_low,
        rho_high=rho_high,
        score=profile_score(point),
        score_low=score_low,
        score_high=score_high,
    )


@dataclass(frozen=True)
class Targets:
    """The two targets of one problem, in its metric's units, and how they were set.

    ``initial`` is ``None`` when no run had a finite metric at step 0 (then the relaxed target is the
    strict one); ``set_by`` names the solver whose level is the strict target.
    """

    metric: str
    higher_is_better: bool
    initial: float | None
    strict: float
    relaxed: float
    set_by: str

    def value(self, kind: str) -> float:
        """The ``"strict"`` or ``"relaxed"`` target."""
        if kind not in TARGET_KINDS:
            raise ValueError(f"target kind must be one of {', '.join(TARGET_KINDS)}, got {kind!r}")
        return self.strict if kind == "strict" else self.relaxed


def configuration_level(runs: Sequence[dict], higher_is_better: bool) -> float:
    """Lower median over seeds of the final validation metric as a cost (a diverged seed: ``inf``)."""
    finals = [run["summary"].final_metric if run["outcome"] == "completed" else None for run in runs]
    return lower_median([_oriented(value, higher_is_better) for value in finals])


def _start_metric(run: dict, metric: str) -> float | None:
    """The validation ``metric`` of the run's step-0 record (``None`` when not recorded)."""
    records = run["records"]
    return (records[0].metrics or {}).get(metric) if records and records[0].step == 0 else None


def problem_targets(problem_runs: ProblemRuns, solver_of: dict[str, str]) -> Targets | None:
    """The strict and relaxed targets of a problem; ``None`` when it is not registered or no
    configuration has a finite level (every one diverged on more than half its seeds).

    ``solver_of`` maps each configuration id to its solver's name.
    """
    problem = problem_runs.problem
    if problem is None or not problem_runs.configurations:
        return None
    higher = problem.higher_is_better
    levels = {
        c.configuration_id: configuration_level(c.runs, higher) for c in problem_runs.configurations if c.runs
    }
    best = min(levels, key=lambda key: (levels[key], solver_of[key]), default=None)
    if best is None or not math.isfinite(levels[best]):
        return None
    strict = levels[best]
    starts = [_start_metric(run, problem.metric) for c in problem_runs.configurations for run in c.runs]
    starts = [_oriented(value, higher) for value in starts if value is not None and math.isfinite(value)]
    initial = statistics.median(starts) if starts else None
    # a start already past the strict target (training made things worse) leaves nothing to give back
    relaxed = strict if initial is None else strict + RELAXED_FRACTION * max(0.0, initial - strict)
    return Targets(
        metric=problem.metric,
        higher_is_better=higher,
        initial=None if initial is None else _from_oriented(initial, higher),
        strict=_from_oriented(strict, higher),
        relaxed=_from_oriented(relaxed, higher),
        set_by=solver_of[best],
    )


@dataclass
class ProfileGroup:
    """Problems profiled together: the sections of one tune, or one comparison of several problems.

    ``after_section`` is the index of the last of those sections: the report shows the profile there.
    """

    title: str
    problems: list[ProblemRuns]
    after_section: int


def _tune_key(section: Section) -> str | None:
    """What the comparisons of one ``descentlab tune`` share (one comparison per problem), else ``None``."""
    meta = section.settings
    if section.kind != "comparison" or not meta.get("tuning"):
        return None
    shared = [meta["tuning"], meta.get("seeds"), meta.get("settings"), meta.get("optimizers")]
    return json.dumps(shared, sort_keys=True, default=str)


def profile_groups(sections: Sequence[Section]) -> list[ProfileGroup]:
    """The tunes of the report (their per-problem comparisons merged), then every other comparison of
    at least two problems, in the order of their last section."""
    tunes: dict[str, ProfileGroup] = {}
    groups = []
    for index, section in enumerate(sections):
        key = _tune_key(section)
        if key is None:
            if section.kind == "comparison" and len(section.problems) >= 2:
                groups.append(ProfileGroup(section.title, list(section.problems), index))
            continue
        if key not in tunes:
            ruleset = section.settings["tuning"].get("ruleset", "")
            tunes[key] = ProfileGroup(f"tune {ruleset}", [], index)
            groups.append(tunes[key])
        group = tunes[key]
        known = {problem.name for problem in group.problems}
        group.problems += [problem for problem in section.problems if problem.name not in known]
        group.after_section = index
    return sorted(groups, key=lambda group: group.after_section)


def solver_names(problems: Sequence[ProblemRuns]) -> dict[str, str]:
    """``{configuration id: solver}``: the optimizer's name when each problem has one configuration per
    optimizer (a tune), else the configuration's label (a missing one counts as not reaching)."""
    unique = all(len({c.optimizer for c in p.configurations}) == len(p.configurations) for p in problems)
    return {
        c.configuration_id: optimizer_display_name(c.optimizer) if unique else c.label
        for p in problems
        for c in p.configurations
    }


@dataclass
class SolverTimes:
    """One solver on one problem against one target: per-seed costs (``inf``: not reached).

    ``label`` is the configuration's label (what exactly ran); ``per_seed`` maps each name of
    :data:`COSTS` to its values in seed order.
    """

    solver: str
    label: str
    per_seed: dict[str, list[float]]

    @property
    def seeds(self) -> int:
        """Runs (seeds) of the configuration."""
        return len(self.per_seed["steps"])

    @property
    def reached(self) -> int:
        """Seeds that reached the target."""
        return sum(math.isfinite(value) for value in self.per_seed["steps"])

    def cost(self, name: str) -> float:
        """The lower median of cost ``name`` over seeds: finite when at least half reached the target."""
        return lower_median(self.per_seed[name])


@dataclass
class GroupProfiles:
    """Everything the report shows about time to target for one :class:`ProfileGroup`.

    ``targets`` holds the problems with a target, ``skipped`` says why each other one has none;
    ``times`` is keyed by
    ``(problem, target kind)`` then solver; ``profiles`` by ``(target kind, cost)``, solvers in
    ``solvers`` order; ``optimizers`` maps each solver to an optimizer (its colour).
    """

    group: ProfileGroup
    solvers: list[str]
    optimizers: dict[str, str]
    targets: dict[str, Targets]
    skipped: dict[str, str]
    times: dict[tuple[str, str], dict[str, SolverTimes]] = field(default_factory=dict)
    profiles: dict[tuple[str, str], ProfileEstimate] = field(default_factory=dict)

    @property
    def costly(self) -> bool:
        """Whether some run spent other than one gradient evaluation per step (else that column repeats)."""
        return any(
            value != steps
            for by_solver in self.times.values()
            for times in by_solver.values()
            for steps, value in zip(times.per_seed["steps"], times.per_seed["gradient_evaluations"])
            if math.isfinite(steps)
        )


def _problem_times(problem_runs: ProblemRuns, targets: Targets, solver_of: dict[str, str]):
    """``{kind: {solver: SolverTimes}}`` of one problem."""
    times: dict[str, dict[str, SolverTimes]] = {kind: {} for kind in TARGET_KINDS}
    for configuration in problem_runs.configurations:
        solver = solver_of[configuration.configuration_id]
        for kind in TARGET_KINDS:
            reached = [
                time_to_target(run["records"], targets.metric, targets.value(kind), targets.higher_is_better)
                for run in configuration.runs
            ]
            per_seed = {cost: [entry[cost] for entry in reached] for cost in COSTS}
            times[kind][solver] = SolverTimes(solver, configuration.label, per_seed)
    return times


def group_profiles(
    group: ProfileGroup, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> GroupProfiles:
    """Targets, times to target, profiles and scores of the problems of ``group``."""
    solver_of = solver_names(group.problems)
    solvers, optimizers = [], {}
    for problem in group.problems:
        for configuration in problem.configurations:
            solver = solver_of[configuration.configuration_id]
            if solver not in optimizers:
                solvers.append(solver)
                optimizers[solver] = configuration.optimizer
    result = GroupProfiles(group, solvers, optimizers, {}, {})
    for problem in group.problems:
        targets = problem_targets(problem, solver_of)
        if targets is None:
            result.skipped[problem.name] = (
                "not registered in this process"
                if problem.problem is None
                else "every configuration diverged on more than half its seeds"
            )
            continue
        result.targets[problem.name] = targets
        for kind, by_solver in _problem_times(problem, targets, solver_of).items():
            result.times[(problem.name, kind)] = by_solver
    if not result.targets:
        return result
    for kind in TARGET_KINDS:
        for cost in COSTS:
            seed_costs = [
                [
                    result.times[(name, kind)][s].per_seed[cost] if s in result.times[(name, kind)] else []
                    for s in solvers
                ]
                for name in result.targets
            ]
            result.profiles[(kind, cost)] = bootstrap_profile(seed_costs, resamples=resamples, seed=seed)
    return result
