"""``descentlab tune``: tune every optimizer on equal terms (Optuna), then compare the best on every seed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from descentlab._cli.lab import (
    DEFAULT_JOBS,
    DEFAULT_OUT,
    DEFAULT_SEEDS,
    _add_common_output,
    _add_settings,
    _compare_names,
    _pair,
    collect_settings,
    ensure_writable,
    parse_seeds,
)
from descentlab.lab.fields import SettingError, parse_bool, parse_choice, parse_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tune`` sub-command."""
    from descentlab.lab.tuning import DEFAULT_RULESET, PRUNERS, RULESETS, SAMPLERS

    tune = subparsers.add_parser(
        "tune",
        help="tune each optimizer's search space with equal budgets, then compare the best on every seed",
        description="For each optimizer and problem an Optuna study searches the optimizer's search space "
        "on the validation metric (trials on the first seed); each best configuration then runs on every "
        "seed and the report compares them on test, with the tuning cost beside each. Rulesets: "
        + "; ".join(f"{r.name}: {r.summary}" for r in RULESETS.values())
        + ". Re-running the same command resumes its studies.",
    )
    tune.add_argument("--optimizers", help="comma-separated, or 'all' (default: those of compare)")
    tune.add_argument("--problems", help="comma-separated (default: the problems tagged 'default')")
    tune.add_argument("--seeds", help=f"comma-separated (default {DEFAULT_SEEDS}); trials train on the first")
    tune.add_argument("--ruleset", help=f"{', '.join(RULESETS)} (default {DEFAULT_RULESET})")
    tune.add_argument("--trials", help="trials per optimizer and problem (default: the ruleset's)")
    tune.add_argument("--sampler", help=f"{' or '.join(SAMPLERS)} (default random, on the declared scales)")
    tune.add_argument("--pruner", help=f"{', '.join(PRUNERS)} (default none)")
    tune.add_argument(
        "--space",
        action="append",
        default=None,
        metavar="[OPTIMIZER.]KEY=LOW:HIGH[:SCALE]",
        help="override a range (scales linear, log, log1m) or give choices A|B, "
        "e.g. --space Adam.eps=1e-10:1e-2:log (repeatable)",
    )
    tune.add_argument("--storage", help="Optuna storage URL (default: sqlite file studies.sqlite in --out)")
    tune.add_argument(
        "--worker",
        action="store_true",
        default=None,
        help="only run trials (several processes may share one --storage); no re-runs, no report",
    )
    tune.add_argument("--jobs", help=f"processes for the re-runs on the seeds (default {DEFAULT_JOBS})")
    _add_settings(tune, vary=False)
    _add_common_output(tune)
    tune.set_defaults(handler=_tune)


def parse_space(items: Any) -> dict[str, str]:
    """``--space`` items (``KEY=TEXT`` strings, or a config table) as ``{key: text}``."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return {str(key): str(value) for key, value in items.items()}
    if isinstance(items, str):
        items = [items]
    overrides = {}
    for item in items:
        key, text = _pair(item, "--space")
        if not text:
            raise SettingError(f"--space {key}= needs LOW:HIGH[:SCALE] or A|B, e.g. --space {key}=1e-4:1:log")
        overrides[key] = text
    return overrides


def _options(args: argparse.Namespace):
    from descentlab.lab.tuning import DEFAULT_RULESET, PRUNERS, RULESETS, SAMPLERS, TuneOptions

    def choice(name: str, value: Any, choices: tuple[str, ...], default: str) -> str:
        return default if value is None else parse_choice(f"--{name}", value, choices)

    options = TuneOptions(
        ruleset=choice("ruleset", args.ruleset, tuple(RULESETS), DEFAULT_RULESET),
        trials=None if args.trials is None else parse_int("--trials", args.trials),
        sampler=choice("sampler", args.sampler, SAMPLERS, "random"),
        pruner=choice("pruner", args.pruner, PRUNERS, "none"),
        storage=None if args.storage is None else str(args.storage),
        space=parse_space(args.space),
        worker=parse_bool("worker", args.worker) if args.worker is not None else False,
    )
    options.check()
    return options


def _print_studies(summary: Any) -> None:
    for tuned in summary.tuned:
        head = f"{tuned.configuration.optimizer} on {tuned.template.problem}"
        if not tuned.trials:
            print(f"{head}: published defaults (no tuning)", file=sys.stderr)
            continue
        best = " ".join(f"{key}={value}" for key, value in tuned.best.items()) or "published defaults"
        value = "-" if tuned.best_value is None else f"{tuned.best_value:.6g}"
        print(
            f"{head}: {tuned.complete} trials complete, {tuned.pruned} pruned, {tuned.trained} trained now; "
            f"best validation {tuned.configuration.problem.metric} {value} with {best}",
            file=sys.stderr,
        )


def finish_studies(out: Any, storage: str, jobs: int) -> None:
    """``report --storage``: the re-runs of every finished tune in ``storage``; say which wait for trials."""
    import optuna

    from descentlab.lab.tuning import finish_from_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    summary = finish_from_storage(out, storage, jobs=jobs)
    for tuned in summary.unfinished:
        print(
            f"study {tuned.study_name}: {tuned.complete + tuned.pruned} of {tuned.trials} trials finished; "
            "its tune is not re-run until workers (`descentlab tune ... --worker`) finish it",
            file=sys.stderr,
        )
    if not summary.comparisons:
        raise SettingError("no tune in the storage has all its trials finished yet; nothing to report")
    print(
        f"{len(summary.comparisons)} comparisons of tuned configurations: "
        f"{sum(c.ran for c in summary.comparisons)} runs trained, "
        f"{sum(c.skipped for c in summary.comparisons)} already stored",
        file=sys.stderr,
    )


def _tune(args: argparse.Namespace) -> int:
    import optuna

    from descentlab.lab.report import write_report
    from descentlab.lab.tuning import run_tuning

    settings, _ = collect_settings(args)
    options = _options(args)
    optimizers, problems = _compare_names(args)
    seeds = parse_seeds(args.seeds if args.seeds is not None else DEFAULT_SEEDS)
    jobs = parse_int("--jobs", args.jobs, minimum=1) if args.jobs is not None else DEFAULT_JOBS
    out = ensure_writable(args.out or DEFAULT_OUT)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress lines say what each trial did
    summary = run_tuning(out, optimizers, problems, seeds, settings=settings, options=options, jobs=jobs)
    _print_studies(summary)
    if options.worker:
        print(f"worker done: {summary.trials_trained} trials trained", file=sys.stderr)
        return 0
    print(write_report(out).resolve())
    return 0
