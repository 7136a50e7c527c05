"""Fair tuning on Optuna: one study per (optimizer, problem); the best configuration runs on every seed.

The protocol of the published optimizer benchmarks (Choi et al. 2019, "On Empirical Comparisons of
Optimizers for Deep Learning"; Schmidt et al. 2021, "Descending through a Crowded Valley"):

1. Every optimizer gets the same number of trials and the same training budget per trial (the
   problem's default budget, or ``steps``/``epochs`` of the settings): a :class:`Ruleset`.
2. A trial samples the optimizer's declared search space (:mod:`descentlab.optim.search_space`,
   overridable per key) and trains one lab run on the first seed; it is scored on the **validation**
   metric at the end of its budget (diverged: the worst score). Random search is the default sampler;
   its draws depend only on the study's seed, the trial's index and the parameter's name, so a resumed
   study draws what an uninterrupted one would. TPE is one option away.
3. A pruner may stop a trial early from its validation metric at :data:`TRIAL_EVALUATIONS` points;
   pruned trials stay ``PRUNED`` in the study, are never stored as runs and never chosen.
4. The best trial's configuration runs on every seed as a comparison of the lab
   (:func:`~descentlab.lab.comparison.run_comparison`), so the report shows it like any configuration,
   with its tuning cost (trials x budget, and the steps actually trained) beside it.

Studies live in Optuna's RDB storage: ``studies.sqlite`` in the results folder by default, or any URL
Optuna accepts (``postgresql://USER@HOST/DB`` through psycopg). A study's name is derived from the
problem, optimizer, ruleset, trial count, budget, sampler, pruner, settings and space, so the same
command resumes the same studies. Trials are lab runs (purpose ``"tune"``) in the results store: a
trial whose run is stored is not trained again, and a trial that a kill interrupted is failed and
re-queued with its parameters when the study resumes.

Several machines: any number of workers (``worker``) pull trials from studies in one shared storage.
A trial trains only if fewer than the asked number of live trials precede it (Optuna numbers a study's
trials under a lock, so the workers agree on that order), so racing workers never overshoot; a worker
killed mid-trial stops beating and its trial is failed and re-queued by a live one; a worker leaves a
study only when all its trials are finished. Each study keeps the request that made it (optimizers,
problems, seeds, settings, options), so :func:`finish_from_storage` runs the final re-runs and the
report on any machine that reaches the storage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
import time
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from descentlab.lab.comparison import (
    ComparisonSummary,
    Configuration,
    build_configurations,
    run_comparison,
)
from descentlab.lab.fields import SettingError
from descentlab.lab.progress import Progress
from descentlab.lab.runner import check_spec, run_spec
from descentlab.lab.spec import RunSpec
from descentlab.lab.store import COMPARISON_PREFIX, RunStore
from descentlab.optim.registry import get_optimizer_class, optimizer_classes
from descentlab.optim.search_space import (
    Categorical,
    SearchSpace,
    check_dimension_name,
    keyword_of,
    parse_dimension,
    sample,
    to_hyperparameters,
)
from descentlab.problems.registry import get_problem


@dataclass(frozen=True)
class Ruleset:
    """A tuning protocol: how many trials, and which part of each optimizer's space they search."""

    name: str
    trials: int
    space: str  # "none" (published defaults), "lr" (lr alone) or "all" (the whole declared space)
    summary: str


RULESETS = {
    ruleset.name: ruleset
    for ruleset in (
        Ruleset("defaults", 0, "none", "no tuning: each optimizer's published defaults"),
        Ruleset("lr-only", 20, "lr", "20 trials on lr alone (the baseline of one tuned hyperparameter)"),
        Ruleset("small", 20, "all", "20 trials on the whole search space"),
        Ruleset("full", 100, "all", "100 trials on the whole search space"),
    )
}
DEFAULT_RULESET = "small"
SAMPLERS = ("random", "tpe")
PRUNERS = ("none", "median", "hyperband")

TRIAL_EVALUATIONS = 10
"""Validation evaluations of a trial run: its final one scores the trial, every one feeds the pruner."""

MEDIAN_STARTUP_TRIALS = 5
"""The median pruner prunes nothing before this many trials finished (a median of fewer is noise)."""

STUDIES_FILE = "studies.sqlite"
PURPOSE = "tune"
"""The store's purpose of trial runs (the report shows only the re-runs of the best configuration)."""

HEARTBEAT_SECONDS = 30
"""A running trial records a heartbeat this often; one silent for four beats counts as dead (its
worker was killed) and is re-queued by the next worker that looks."""

POLL_SECONDS = 5
"""How often a worker with no trial left to start looks again at a study whose last trials other
workers train (they may finish, or die and come back to the queue)."""

REQUEST_ATTRIBUTE = "descentlab.tune."
"""Prefix of the study attributes that keep each tune request using the study (one per request)."""


@dataclass
class TuneOptions:
    """How to tune: ruleset, trial count (``None``: the ruleset's), sampler, pruner, storage, overrides.

    ``space`` maps ``KEY`` or ``Optimizer.KEY`` to ``--space`` text (``1e-10:1e-2:log``, ``a|b``);
    ``worker`` runs trials only (no re-runs on the seeds, no interrupted trials failed on start).
    """

    ruleset: str = DEFAULT_RULESET
    trials: int | None = None
    sampler: str = "random"
    pruner: str = "none"
    storage: str | None = None
    space: Mapping[str, str] = field(default_factory=dict)
    worker: bool = False

    def check(self) -> None:
        """Raise :class:`SettingError` naming the first bad option."""
        if self.ruleset not in RULESETS:
            raise SettingError(f"--ruleset must be one of {', '.join(RULESETS)}, got {self.ruleset!r}")
        if self.sampler not in SAMPLERS:
            raise SettingError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise SettingError(f"--pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")
        if self.trials is not None and self.trials < 0:
            raise SettingError(f"--trials must be a whole number >= 0, got {self.trials}")

    @property
    def trial_count(self) -> int:
        """Trials per study: ``trials`` when given, else the ruleset's."""
        ruleset = RULESETS[self.ruleset]
        if ruleset.space == "none":
            return 0
        return ruleset.trials if self.trials is None else self.trials


@dataclass
class TunedConfiguration:
    """One (optimizer, problem) study: its space, its trial counts and the best trial's hyperparameters."""

    configuration: Configuration
    space: SearchSpace
    trials: int
    study_name: str = ""
    complete: int = 0
    pruned: int = 0
    steps_trained: int = 0
    trained: int = 0
    best: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None

    @property
    def template(self) -> RunSpec:
        """The configuration's spec on seed 0, before tuning."""
        return self.configuration.template

    def trial_spec(self, hyperparameters: Mapping[str, Any], seed: int) -> RunSpec:
        """The run of one trial: the template with ``hyperparameters`` on ``seed``, evaluated rarely."""
        body = self.template.to_dict()
        body["hyperparameters"] = {**body["hyperparameters"], **hyperparameters}
        body["record"] = {**body["record"], "evaluations": TRIAL_EVALUATIONS}
        return RunSpec.from_dict({**body, "seed": seed})

    def budget(self) -> tuple[int, str]:
        """The training budget of one trial: ``(count, "steps" or "epochs")``."""
        if self.template.epochs is not None:
            return self.template.epochs, "epochs"
        return self.template.steps or self.configuration.problem.budget_steps, "steps"

    def facts(self) -> dict[str, Any]:
        """What the report shows about the tuning of this configuration."""
        count, unit = self.budget()
        return {
            "study": self.study_name,
            "trials": self.trials,
            "complete": self.complete,
            "pruned": self.pruned,
            "budget": count,
            "unit": unit,
            "cost": self.trials * count,
            "steps_trained": self.steps_trained,
            "space": {dimension.name: dimension.describe() for dimension in self.space},
            "best_validation": self.best_value,
        }


@dataclass
class TuneSummary:
    """What :func:`run_tuning` did: the studies and the comparisons of the best configurations.

    ``unfinished``: studies :func:`finish_from_storage` left alone because trials are still missing.
    """

    tuned: list[TunedConfiguration] = field(default_factory=list)
    comparisons: list[ComparisonSummary] = field(default_factory=list)
    unfinished: list[TunedConfiguration] = field(default_factory=list)

    @property
    def trials_trained(self) -> int:
        """Trial runs trained by this call (stored trials and pruned ones are not trained again)."""
        return sum(t.trained for t in self.tuned)


def _resolve_overrides(overrides: Mapping[str, str], optimizer: str) -> dict[str, str]:
    """Plain keys, then ``Optimizer.key`` keys of ``optimizer`` on top (like ``--set``)."""
    known = optimizer_classes()
    plain, qualified = {}, {}
    for key, text in overrides.items():
        prefix, dot, rest = key.partition(".")
        if dot and prefix.lower() in known:
            if prefix.lower() == optimizer.lower():
                qualified[rest] = (key, text)
        elif dot:
            raise SettingError(f"--space {key}: unknown optimizer {prefix!r}; write Optimizer.KEY=LOW:HIGH")
        else:
            plain[key] = (key, text)
    return {**plain, **qualified}


def resolve_space(cls: type, options: TuneOptions, fixed: Mapping[str, Any]) -> SearchSpace:
    """The space one study searches: the ruleset's part of ``cls.search_space``, overridden, without
    the keys a setting fixes (``--set Adam.eps=1e-8`` fixes eps)."""
    ruleset = RULESETS[options.ruleset]
    if ruleset.space == "none":
        return ()
    space = {d.name: d for d in getattr(cls, "search_space", ()) if ruleset.space == "all" or d.name == "lr"}
    for name, (key, text) in _resolve_overrides(options.space, cls.__name__).items():
        try:
            check_dimension_name(name, cls)
            space[name] = parse_dimension(name, text, space.get(name))
        except ValueError as error:
            raise SettingError(f"--space {key}: {error}") from None
    return tuple(d for d in space.values() if keyword_of(d.name) not in fixed)


def _ends(dimension) -> list[Any]:
    return list(dimension.choices) if isinstance(dimension, Categorical) else [dimension.low, dimension.high]


def _corners(space: SearchSpace) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each end of each dimension alone (its conditions met), to check before any trial trains."""
    for dimension in space:
        values = (
            [*dimension.choices] if isinstance(dimension, Categorical) else [dimension.low, dimension.high]
        )
        for value in values:
            given = {dimension.name: value}
            condition = next((d for d in space if d.name == dimension.when), None)
            if condition is not None:  # the dimension it needs, at its upper end (e.g. momentum on)
                given[condition.name] = (
                    condition.choices[-1] if isinstance(condition, Categorical) else condition.high
                )
            yield f"{dimension.name}={value!r}", given


def check_space(cls: type, space: SearchSpace) -> None:
    """Build ``cls`` at every corner of ``space``, so a range the optimizer refuses fails up front."""
    parameter = torch.zeros(1, requires_grad=True)
    for where, values in _corners(space):
        try:
            cls([parameter], **to_hyperparameters(values, cls))
        except (ValueError, TypeError) as error:
            raise SettingError(f"--space {cls.__name__}.{where}: {error}") from None


def study_name(tuned: TunedConfiguration, options: TuneOptions) -> str:
    """A readable, stable name: the same command resumes the same study."""
    count, unit = tuned.budget()
    body = json.dumps(
        [tuned.template.configuration_id, [(d.name, d.describe(), d.optional, d.when) for d in tuned.space]],
        sort_keys=True,
    )
    digest = hashlib.sha256(body.encode()).hexdigest()[:8]
    return (
        f"{tuned.configuration.problem.name}/{tuned.configuration.optimizer}/{options.ruleset}/"
        f"{tuned.trials}x{count}{unit}/{options.sampler}-{options.pruner}/{digest}"
    )


class IndexedRandomSampler(optuna.samplers.BaseSampler):
    """Random search whose draw depends only on ``(seed, trial index, parameter name)``.

    The index counts the study's earlier trials that did not fail, so a study resumed after a kill
    draws the values an uninterrupted one would (Optuna's own ``RandomSampler`` restarts its stream in
    each process and would repeat the first draws), and a conditional parameter never shifts the draws
    of the others.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._indices: dict[int, int] = {}

    def infer_relative_search_space(self, study, trial) -> dict:
        return {}

    def sample_relative(self, study, trial, search_space) -> dict:
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution) -> Any:
        """One draw of ``param_name`` by Optuna's random sampler, seeded for this trial and parameter."""
        if trial.number not in self._indices:
            alive = study.get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
            )
            self._indices[trial.number] = sum(other.number < trial.number for other in alive)
        seed = zlib.crc32(f"{self.seed}/{self._indices[trial.number]}/{param_name}".encode())
        sampler = optuna.samplers.RandomSampler(seed=seed)
        return sampler.sample_independent(study, trial, param_name, param_distribution)


def _seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def _sampler(options: TuneOptions, name: str, finished: int) -> optuna.samplers.BaseSampler:
    if options.sampler == "random":
        return IndexedRandomSampler(_seed_of(name))
    # TPE learns from the history, so its seed follows it: a resumed study continues reproducibly
    return optuna.samplers.TPESampler(seed=_seed_of(f"{name}/{finished}"))


def _pruner(options: TuneOptions) -> optuna.pruners.BasePruner:
    if options.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS)
    if options.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def database_url(url: str) -> str:
    """``url`` as SQLAlchemy opens it: a plain PostgreSQL URL gets the psycopg driver.

    SQLAlchemy's default driver for ``postgresql://`` is psycopg2, which descentlab does not depend
    on; ``postgres://`` (what many hosting services print) is the same database.
    """
    scheme, separator, rest = url.partition("://")
    if separator and scheme.lower() in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


SCHEMA_ATTEMPTS = 5
"""Tries to open a storage whose tables another worker may be creating at the same moment."""


def _engine_arguments(url: str) -> dict[str, Any] | None:
    """SQLite waits for a busy file; PostgreSQL gives up on an unreachable server after 30 s."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 30}}
    return None


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            database_url(url),
            engine_kwargs=_engine_arguments(database_url(url)),
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=4 * HEARTBEAT_SECONDS,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
        )


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url``, with heartbeats so that a killed worker's trial is re-queued."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError, SQLAlchemyError

    for attempt in range(1, SCHEMA_ATTEMPTS):
        try:
            return _rdb_storage(url)
        except (IntegrityError, ProgrammingError):
            # workers that open a new database at once race to create Optuna's tables (PostgreSQL
            # refuses the second CREATE); the loser finds them made when it tries again
            time.sleep(attempt)
        except (SQLAlchemyError, ImportError, ValueError) as error:
            raise _storage_error(url, error) from None
    try:
        return _rdb_storage(url)
    except (SQLAlchemyError, ImportError, ValueError) as error:
        raise _storage_error(url, error) from None


def _storage_error(url: str, error: Exception) -> SettingError:
    reason = " ".join(str(getattr(error, "orig", None) or error).split())
    return SettingError(f"cannot open the study storage {_redacted(url)!r} ({reason}); check --storage")


def default_storage_url(out_dir: str | Path) -> str:
    """``sqlite:///<out>/studies.sqlite``."""
    return f"sqlite:///{(Path(out_dir) / STUDIES_FILE).resolve()}"


def _counts(study: optuna.Study) -> dict[TrialState, int]:
    counts = dict.fromkeys(TrialState, 0)
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state] += 1
    return counts


def _requeue_interrupted(study: optuna.Study) -> None:
    """Fail the trials a kill left running and queue their parameters again (this process owns the study)."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


@contextlib.contextmanager
def _heartbeat(storage: optuna.storages.RDBStorage, trial: optuna.Trial) -> Iterator[None]:
    """Record the trial's heartbeat every :data:`HEARTBEAT_SECONDS` while the block runs."""
    stop = threading.Event()
    # Optuna's ask/tell interface starts no heartbeat of its own; its storage keys heartbeats by the
    # trial's storage id, which the Trial keeps as ``_trial_id``.
    trial_id = trial._trial_id

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if stop.wait(HEARTBEAT_SECONDS):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _score(run: Mapping[str, Any], higher_is_better: bool) -> float:
    """The trial's objective: the final validation metric; diverged or missing scores worst."""
    value = run["summary"].final_metric
    if run["outcome"] != "completed" or value is None or not math.isfinite(value):
        return -math.inf if higher_is_better else math.inf
    return value


def _reporter(trial: optuna.Trial, metric: str):
    """The runner's evaluation hook of one trial: report the metric, raise when the pruner says so."""

    def report(step: int, metrics: dict[str, float]) -> None:
        value = metrics.get(metric, math.nan)
        if math.isfinite(value):
            trial.report(value, step)
        if trial.should_prune():
            trial.set_user_attr("steps", step)
            raise optuna.TrialPruned(f"pruned at step {step}")

    return report


@dataclass
class _StudyRun:
    """What the trials of one call share: the store, its stored trial runs, the storage, the seed, and
    the request kept on every study (see :func:`_request`)."""

    store: RunStore
    stored: dict[str, dict[str, Any]]
    storage: optuna.storages.RDBStorage
    seed: int
    request: dict[str, Any]


def _run_trial(
    study: optuna.Study, tuned: TunedConfiguration, trial: optuna.Trial, context: _StudyRun
) -> None:
    """Sample, train (unless stored) and tell one trial."""
    cls = get_optimizer_class(tuned.configuration.optimizer)
    problem = tuned.configuration.problem
    hyperparameters = to_hyperparameters(sample(tuned.space, trial), cls)
    spec = tuned.trial_spec(hyperparameters, context.seed)
    trial.set_user_attr("hyperparameters", hyperparameters)
    trial.set_user_attr("run_id", spec.run_id)
    run = context.stored.get(spec.run_id)
    if run is None:
        try:
            result = run_spec(spec, on_evaluation=_reporter(trial, problem.metric))
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
            return
        context.store.save(result, PURPOSE)
        run = context.stored[spec.run_id] = {"outcome": result.outcome, "summary": result.summary}
        tuned.trained += 1
    trial.set_user_attr("steps", run["summary"].steps)
    study.tell(trial, _score(run, problem.higher_is_better))


def _open_study(tuned: TunedConfiguration, options: TuneOptions, context: _StudyRun) -> optuna.Study:
    """Create or load the study, and keep the request on it (each request once)."""
    direction = "maximize" if tuned.configuration.problem.higher_is_better else "minimize"
    study = optuna.create_study(
        storage=context.storage,
        study_name=tuned.study_name,
        direction=direction,
        pruner=_pruner(options),
        load_if_exists=True,
    )
    study.sampler = _sampler(options, tuned.study_name, len(study.get_trials(deepcopy=False)))
    key = REQUEST_ATTRIBUTE + _digest(context.request)
    if key not in study.user_attrs:
        study.set_user_attr(key, context.request)
    return study


def _claimed(study: optuna.Study, trial: optuna.Trial, trials: int) -> bool:
    """Whether ``trial`` is one of the study's first ``trials`` live ones (finished, running or queued).

    Optuna numbers a study's trials under a lock on the study, so every trial numbered below this one
    is visible now; two workers that asked at once therefore agree which of them is one too many.
    """
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    ahead = study.get_trials(deepcopy=False, states=live)
    return sum(other.number < trial.number for other in ahead) < trials


def _next_trial(study: optuna.Study, trials: int) -> optuna.Trial | None:
    """A trial to run (a re-queued one first), or ``None`` when every trial is finished or running."""
    with warnings.catch_warnings():
        # heartbeats are ours (see _heartbeat), which Optuna's ask/tell warns it does not start
        warnings.filterwarnings("ignore", "Heartbeat of storage")
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial goes back to the queue
        counts = _counts(study)
        if counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] + counts[TrialState.RUNNING] >= trials:
            return None
        trial = study.ask()
    if _claimed(study, trial, trials):
        return trial
    # another worker asked at the same moment and got the last place: this trial never runs
    trial.set_user_attr("surplus", True)
    study.tell(trial, state=TrialState.FAIL)
    return None


def _tune_study(tuned: TunedConfiguration, study: optuna.Study, context: _StudyRun) -> bool:
    """Run trials of the study while any is left to start; ``True`` when all of them are finished."""
    counts = _counts(study)
    missing = max(0, tuned.trials - counts[TrialState.COMPLETE] - counts[TrialState.PRUNED])
    label = f"tune {get_optimizer_class(tuned.configuration.optimizer).__name__} on {tuned.template.problem}"
    progress = Progress(missing, label)
    try:
        while (trial := _next_trial(study, tuned.trials)) is not None:
            with _heartbeat(context.storage, trial):
                _run_trial(study, tuned, trial, context)
            progress.update()
    finally:
        progress.close()
    _collect(tuned, study)
    return tuned.complete + tuned.pruned >= tuned.trials


def _tune_studies(tuned_list: list[TunedConfiguration], options: TuneOptions, context: _StudyRun) -> None:
    """Run every study until all its trials are finished (waiting for other workers' last ones)."""
    pending = [tuned for tuned in tuned_list if tuned.trials]
    studies = {tuned.study_name: _open_study(tuned, options, context) for tuned in pending}
    if not options.worker:
        for study in studies.values():
            _requeue_interrupted(study)
    while pending:
        pending = [tuned for tuned in pending if not _tune_study(tuned, studies[tuned.study_name], context)]
        if pending:
            time.sleep(POLL_SECONDS)


def _collect(tuned: TunedConfiguration, study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    tuned.complete, tuned.pruned = len(complete), len(trials) - len(complete)
    tuned.steps_trained = sum(int(trial.user_attrs.get("steps", 0)) for trial in trials)
    if not complete or not math.isfinite(study.best_trial.value):
        return  # nothing finished, or every trial diverged: the published defaults stand
    best = study.best_trial
    tuned.best_value = best.value
    tuned.best = {
        name: tuple(value) if isinstance(value, list) else value
        for name, value in best.user_attrs["hyperparameters"].items()
    }


def _tuned_configurations(
    optimizers: Sequence[str], problems: Sequence[str], settings: Mapping[str, Any], options: TuneOptions
) -> list[TunedConfiguration]:
    """One study's worth of configuration per (problem, optimizer), each space checked."""
    problem_objects = [get_problem(name) for name in problems]
    configurations = build_configurations(optimizers, problem_objects, settings, [], sweep=False)
    tuned_list = []
    for configuration in configurations:
        cls = get_optimizer_class(configuration.optimizer)
        space = resolve_space(cls, options, configuration.template.hyperparameter_dict)
        check_space(cls, space)
        tuned = TunedConfiguration(configuration, space, options.trial_count if space else 0)
        tuned.study_name = study_name(tuned, options)
        tuned_list.append(tuned)
    return tuned_list


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _final_comparison(
    out_dir: str | Path,
    tuned_list: list[TunedConfiguration],
    seeds: list[int],
    settings: Mapping[str, Any],
    options: TuneOptions,
    jobs: int,
) -> ComparisonSummary:
    """Run the best configuration of each optimizer on one problem on every seed, as a comparison."""
    best_settings = dict(settings)
    for tuned in tuned_list:
        prefix = get_optimizer_class(tuned.configuration.optimizer).__name__
        best_settings.update({f"{prefix}.{key}": value for key, value in tuned.best.items()})
    problem = tuned_list[0].configuration.problem.name
    digest = hashlib.sha256(json.dumps([t.study_name for t in tuned_list]).encode()).hexdigest()[:8]
    name = f"tune-{options.ruleset}-{problem}-{digest}"
    optimizers = [tuned.configuration.optimizer for tuned in tuned_list]
    summary = run_comparison(
        out_dir, optimizers, [problem], seeds, settings=best_settings, lr_grid=None, name=name, jobs=jobs
    )
    with RunStore(out_dir) as store:
        meta = store.get_meta(COMPARISON_PREFIX + name)
        facts = {tuned.configuration.optimizer: tuned.facts() for tuned in tuned_list}
        for configuration in meta["configurations"]:
            configuration["tuning"] = facts.get(configuration["optimizer"])
        meta["settings"] = {key: str(value) for key, value in settings.items()}
        meta["tuning"] = {
            "ruleset": options.ruleset,
            "trials": options.trial_count,
            "sampler": options.sampler,
            "pruner": options.pruner,
            "trial_seed": seeds[0],
            "storage": _redacted(options.storage) if options.storage else STUDIES_FILE,
        }
        store.set_meta(COMPARISON_PREFIX + name, meta)
    return summary


def run_tuning(
    out_dir: str | Path,
    optimizers: Sequence[str],
    problems: Sequence[str],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    settings: Mapping[str, Any] | None = None,
    options: TuneOptions | None = None,
    jobs: int = 1,
) -> TuneSummary:
    """Tune every optimizer on every problem, then run each best configuration on every seed.

    Args:
        out_dir: results folder (the store, the report and, by default, the studies).
        optimizers, problems: what to tune (registry names).
        seeds: trials train on the first; the best configuration runs on all of them.
        settings: ``--set`` settings for every run (``Optimizer.key`` for one optimizer); a
            hyperparameter set here is fixed and leaves the search space.
        options: ruleset, trials, sampler, pruner, storage, space overrides, worker mode.
        jobs: worker processes of the re-runs on the seeds (trials run one after another here).

    Returns:
        The studies (counts, best hyperparameters) and the comparisons of the re-runs (none for a
        worker).
    """
    options = options or TuneOptions()
    settings, seeds = dict(settings or {}), list(seeds)
    tuned_list = run_studies(out_dir, optimizers, problems, seeds, settings=settings, options=options)
    summary = TuneSummary(tuned_list)
    if not options.worker:
        summary.comparisons = _final_comparisons(out_dir, summary.tuned, seeds, settings, options, jobs)
    return summary


def run_studies(
    out_dir: str | Path,
    optimizers: Sequence[str],
    problems: Sequence[str],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    settings: Mapping[str, Any] | None = None,
    options: TuneOptions | None = None,
) -> list[TunedConfiguration]:
    """The studies of :func:`run_tuning` without the re-runs: every trial trained on the first seed.

    Arguments as for :func:`run_tuning`. Trials already stored are not trained again, so calling this
    twice trains each trial once. :func:`trial_specs` lists a finished study's trials as lab runs.
    """
    options = options or TuneOptions()
    options.check()
    settings = dict(settings or {})
    seeds = list(seeds)
    if not optimizers or not problems or not seeds:
        raise ValueError("tuning needs at least one optimizer, one problem and one seed")
    optimizers = [get_optimizer_class(name).__name__.lower() for name in optimizers]  # as compare stores them
    tuned_list = _tuned_configurations(optimizers, problems, settings, options)
    for tuned in tuned_list:  # fail on a bad configuration before hours of work
        check_spec(tuned.trial_spec({}, seeds[0]))
    if any(tuned.trials for tuned in tuned_list):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        storage = open_storage(options.storage or default_storage_url(out_dir))
        request = _request(optimizers, problems, seeds, settings, options)
        with RunStore(out_dir) as store:
            stored = {run["run_id"]: run for run in store.runs(PURPOSE)}
            _tune_studies(tuned_list, options, _StudyRun(store, stored, storage, seeds[0], request))
    return tuned_list


def trial_specs(tuned: TunedConfiguration, storage: str, seed: int) -> dict[int, RunSpec]:
    """The complete trials of ``tuned``'s study in ``storage`` (a URL), by trial number, as the lab
    runs they trained on ``seed`` (pruned trials were never stored and are left out)."""
    study = optuna.load_study(study_name=tuned.study_name, storage=open_storage(storage))
    specs = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        spec = tuned.trial_spec(trial.user_attrs["hyperparameters"], seed)
        if spec.run_id != trial.user_attrs["run_id"]:
            stored = trial.user_attrs["run_id"]
            raise ValueError(
                f"trial {trial.number} of study {tuned.study_name!r} trained run {stored}, not "
                f"{spec.run_id}; the study was made by another version: tune into a fresh folder"
            )
        specs[trial.number] = spec
    return specs


def _final_comparisons(
    out_dir: str | Path,
    tuned_list: list[TunedConfiguration],
    seeds: list[int],
    settings: Mapping[str, Any],
    options: TuneOptions,
    jobs: int,
) -> list[ComparisonSummary]:
    """One comparison of the best configurations per problem, in the order of the problems."""
    comparisons = []
    for problem in dict.fromkeys(tuned.configuration.problem.name for tuned in tuned_list):
        group = [tuned for tuned in tuned_list if tuned.configuration.problem.name == problem]
        comparisons.append(_final_comparison(out_dir, group, seeds, settings, options, jobs))
    return comparisons


def _request(
    optimizers: Sequence[str],
    problems: Sequence[str],
    seeds: Sequence[int],
    settings: Mapping[str, Any],
    options: TuneOptions,
) -> dict[str, Any]:
    """What :func:`finish_from_storage` needs to rebuild the studies and re-runs of one ``tune`` (JSON)."""
    return {
        "optimizers": list(optimizers),
        "problems": list(problems),
        "seeds": list(seeds),
        # settings arrive as text from the command line; other values keep what JSON can hold
        "settings": json.loads(json.dumps(dict(settings), default=str)),
        "options": {
            "ruleset": options.ruleset,
            "trials": options.trials,
            "sampler": options.sampler,
            "pruner": options.pruner,
            "space": dict(options.space),
        },
    }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def _stored_requests(storage: optuna.storages.RDBStorage) -> tuple[list[dict[str, Any]], set[str]]:
    """Every distinct tune request kept on the storage's studies, and the names of all its studies."""
    requests: dict[str, dict[str, Any]] = {}
    names = set()
    for study in storage.get_all_studies():
        names.add(study.study_name)
        for key, value in sorted(study.user_attrs.items()):
            if key.startswith(REQUEST_ATTRIBUTE):
                requests.setdefault(key, value)
    return list(requests.values()), names


def finish_from_storage(out_dir: str | Path, storage: str, *, jobs: int = 1) -> TuneSummary:
    """Re-run the best configurations of every finished ``tune`` in ``storage`` into ``out_dir``.

    The studies keep the requests that made them, so this runs on any machine that reaches the
    storage, whichever workers trained the trials: each request whose studies have all their trials
    finished gets its comparisons on every seed (as :func:`run_tuning` would run them); one with
    trials still missing is left for later and listed in ``unfinished``.

    Raises:
        SettingError: the storage cannot be opened, or holds no study made by ``descentlab tune``.
    """
    opened = open_storage(storage)
    requests, study_names = _stored_requests(opened)
    if not requests:
        raise SettingError(
            f"the study storage {_redacted(storage)!r} holds no study of `descentlab tune`; check --storage"
        )
    summary = TuneSummary()
    for request in requests:
        options = TuneOptions(**request["options"], storage=storage)
        tuned_list = _tuned_configurations(
            request["optimizers"], request["problems"], request["settings"], options
        )
        for tuned in tuned_list:
            if tuned.trials and tuned.study_name in study_names:
                _collect(tuned, optuna.load_study(study_name=tuned.study_name, storage=opened))
        summary.tuned += tuned_list
        unfinished = [tuned for tuned in tuned_list if tuned.complete + tuned.pruned < tuned.trials]
        summary.unfinished += unfinished
        if not unfinished:
            summary.comparisons += _final_comparisons(
                out_dir, tuned_list, request["seeds"], request["settings"], options, jobs
            )
    return summary
