"""``descentlab problems``, ``run``, ``compare`` and ``report``: the lab on the command line.

Settings (``--set KEY=VALUE``, ``--vary KEY=V1,V2``; keys in :mod:`descentlab.lab.fields`) are the same
in every command and in ``--config`` files, whose keys are the long options (``optimizers``,
``seeds``, ...), a ``set`` table, a ``vary`` table, and any setting key (taken as ``--set``).
Command-line options win over the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from descentlab.lab.fields import SettingError, parse_bool, parse_int

DEFAULT_OUT = "descentlab-runs"
DEFAULT_OPTIMIZERS = (
    "SGD",
    "Momentum",
    "Nesterov",
    "Adagrad",
    "RMSprop",
    "Adadelta",
    "Adam",
    "NAdam",
    "AdamW",
    "RAdam",
)
DEFAULT_SEEDS = "0,1,2"
DEFAULT_JOBS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
DEFAULT_COMPARISON = "default"
"""The name of the comparison ``compare`` runs with no arguments (``make demo``)."""

# Shortcut flags and the setting each one sets.
_SHORTCUTS = {
    "lr": "lr",
    "schedule": "schedule",
    "steps": "steps",
    "epochs": "epochs",
    "batch_size": "batch_size",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``problems``, ``run``, ``compare`` and ``report`` sub-commands."""
    problems = subparsers.add_parser("problems", help="list every problem the lab can train on")
    problems.set_defaults(handler=_list_problems)

    run = subparsers.add_parser("run", help="train one configuration on one seed and store the run")
    run.add_argument("--problem", help="problem name (see `descentlab problems`)")
    run.add_argument("--optimizer", help="optimizer name (see `descentlab optimizers`)")
    run.add_argument("--variant", help="optimizer variant (see `descentlab optimizers`)")
    run.add_argument("--seed", help="seed of data order, init and start (default 0)")
    run.add_argument(
        "--hp", action="append", default=[], metavar="NAME=VALUE", help="same as --set (repeatable)"
    )
    _add_settings(run, vary=False)
    _add_common_output(run)
    run.set_defaults(handler=_run)

    compare = subparsers.add_parser(
        "compare",
        help="compare optimizers on problems over seeds, then write the report",
        description="With no options: the default comparison (classic optimizers on the problems tagged "
        "'default'), with a learning-rate sweep per configuration.",
    )
    compare.add_argument(
        "--optimizers", help=f"comma-separated, or 'all' (default: {','.join(DEFAULT_OPTIMIZERS)})"
    )
    compare.add_argument("--problems", help="comma-separated (default: the problems tagged 'default')")
    compare.add_argument("--seeds", help=f"comma-separated seeds (default {DEFAULT_SEEDS})")
    compare.add_argument("--jobs", help=f"parallel worker processes (default: the {DEFAULT_JOBS} cores)")
    compare.add_argument("--name", help="name of this comparison in the folder (default: from its settings)")
    compare.add_argument(
        "--executor",
        help="processes (default: --jobs processes here) or ray (each run a Ray task; pip install "
        "'descentlab[ray]')",
    )
    compare.add_argument(
        "--address", help="with --executor ray: the cluster, HOST:PORT or ray://HOST:PORT (default: local)"
    )
    compare.add_argument(
        "--no-sweep", action="store_true", default=None, help="use each optimizer's default learning rate"
    )
    _add_settings(compare, vary=True)
    _add_common_output(compare)
    compare.set_defaults(handler=_compare)

    report = subparsers.add_parser(
        "report",
        help="re-render the report of a results folder from its store",
        description="With --storage: first re-run the best configurations of every finished `tune` in that "
        "study storage on every seed (any machine that reaches it; workers may have trained the trials "
        "elsewhere) into the folder, then write the report.",
    )
    report.add_argument("dir", nargs="?", default=None, help=f"results folder (default ./{DEFAULT_OUT})")
    report.add_argument(
        "--to", metavar="FOLDER", help="write the report files there (default: the results folder)"
    )
    report.add_argument(
        "--storage", help="Optuna storage URL of `tune` studies to finish, e.g. postgresql://..."
    )
    report.add_argument("--jobs", help=f"with --storage: processes for the re-runs (default {DEFAULT_JOBS})")
    report.add_argument("--config", help="TOML or YAML file of options")
    report.set_defaults(handler=_report)


def _add_settings(parser: argparse.ArgumentParser, vary: bool) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every run, e.g. --set lr=0.1, --set SGD.momentum=0.9, --set schedule=cosine",
    )
    if vary:
        parser.add_argument(
            "--vary",
            action="append",
            default=[],
            metavar="KEY=V1,V2",
            help="one configuration per value, e.g. --vary batch_size=16,full (several: their product)",
        )
    parser.add_argument("--lr", help="learning rate (same as --set lr=...; a compare skips its sweep)")
    parser.add_argument("--schedule", help="learning-rate schedule (same as --set schedule=...)")
    parser.add_argument("--steps", help="optimizer steps per run (default: per problem)")
    parser.add_argument("--epochs", help="passes over the training data (instead of --steps)")
    parser.add_argument("--batch-size", help="minibatch size, or 'full' (default: per problem)")


def _add_common_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", help=f"results folder (default ./{DEFAULT_OUT})")
    parser.add_argument(
        "--log",
        help="live logs written while runs train: none (default), csv (<out>/live/), tensorboard "
        "(<out>/tensorboard/), or csv,tensorboard",
    )
    parser.add_argument("--config", help="TOML or YAML file of options (command-line options win)")


def _pair(text: Any, option: str) -> tuple[str, str]:
    key, separator, value = str(text).partition("=")
    if not separator or not key.strip():
        raise SettingError(f"{option} takes KEY=VALUE, e.g. {option} lr=0.1; got {text!r}")
    return key.strip(), value.strip()


def _split_list(text: Any) -> list[str]:
    if isinstance(text, list | tuple):
        return [str(item).strip() for item in text if str(item).strip()]
    return [part.strip() for part in str(text).split(",") if part.strip()]


def _merge_config(args: argparse.Namespace, settings: dict[str, Any], vary: dict[str, list[Any]]) -> None:
    """Fill options the command line left unset from ``--config``; unknown keys are errors."""
    if not getattr(args, "config", None):
        return
    from descentlab.lab.config_file import load_config
    from descentlab.lab.fields import FIELDS

    skip = ("handler", "config", "set", "vary", "hp", *_SHORTCUTS)
    options = [key for key in vars(args) if key not in skip]
    for key, value in load_config(args.config).items():
        if key == "set" or key == "hp":
            if not isinstance(value, dict):
                raise SettingError(f"{key!r} in {args.config} must be a table of KEY = VALUE")
            for name, item in value.items():
                settings.setdefault(str(name), item)
        elif key == "vary" and hasattr(args, "vary"):
            if not isinstance(value, dict):
                raise SettingError(f"'vary' in {args.config} must be a table of KEY = [V1, V2]")
            for name, items in value.items():
                vary.setdefault(str(name), items if isinstance(items, list) else _split_list(items))
        elif key in options:
            if getattr(args, key) is None:
                setattr(args, key, value)
        elif key in FIELDS or key in _SHORTCUTS or "." in key:
            settings.setdefault(_SHORTCUTS.get(key, key), value)
        else:
            raise SettingError(
                f"unknown option {key!r} in {args.config}; allowed: {', '.join(sorted(options))}, "
                f"{', '.join(_SHORTCUTS)}, set, vary, or a setting key (see `descentlab compare --help`)"
            )


def collect_settings(args: argparse.Namespace) -> tuple[dict[str, Any], list[tuple[str, list[Any]]]]:
    """The ``--set``/shortcut settings and ``--vary`` lists of ``args`` (config file merged in)."""
    settings: dict[str, Any] = {}
    for item in [*getattr(args, "hp", []), *args.set]:
        key, value = _pair(item, "--set")
        settings[key] = value
    for flag, key in _SHORTCUTS.items():
        if getattr(args, flag, None) is not None:
            settings[key] = getattr(args, flag)
    vary: dict[str, list[Any]] = {}
    for item in getattr(args, "vary", []):
        key, values = _pair(item, "--vary")
        if key in vary:
            raise SettingError(f"--vary {key} is given twice; list every value once: --vary {key}=A,B")
        vary[key] = _split_list(values)
    _merge_config(args, settings, vary)
    for key, values in vary.items():
        if key in settings:
            raise SettingError(f"{key} is both set and varied; drop one")
        if not values:
            raise SettingError(f"--vary {key}= needs at least one value")
    return settings, list(vary.items())


def parse_seeds(text: Any) -> list[int]:
    """Comma-separated whole seeds (or a list of them), each in ``[0, 2**62)``."""
    from descentlab.lab.spec import MAX_SEED

    seeds = [parse_int("--seeds", part) for part in _split_list(text)]
    if not seeds:
        raise SettingError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    too_large = [seed for seed in seeds if seed >= MAX_SEED]
    if too_large:
        raise SettingError(f"--seeds must be below 2**62, got {too_large[0]}")
    return list(dict.fromkeys(seeds))


def ensure_writable(
    folder: str | Path, what: str = "to --out", fix: str = "choose a folder you can write"
) -> Path:
    """Create ``folder`` if needed and check a file can be written there, before any training.

    ``what`` and ``fix`` word the error: ``cannot write {what} 'folder' (reason); {fix}``.
    """
    import tempfile

    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise SettingError(f"--out {str(path)!r} is a file, not a folder; choose a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".descentlab-write-test-"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise SettingError(f"cannot write {what} {str(path)!r} ({reason}); {fix}") from None
    return path


def _list_problems(args: argparse.Namespace) -> int:
    from descentlab.problems import all_problems

    rows = [("problem", "kind", "steps", "metric", "target", "seeds vary", "summary")]
    for problem in all_problems():
        rows.append(
            (
                problem.name,
                problem.kind,
                str(problem.budget_steps),
                problem.metric,
                "-" if problem.target is None else f"{problem.target:g}",
                "start" if getattr(problem, "deterministic", False) else "data/noise/init",
                problem.summary,
            )
        )
    if len(rows) == 1:
        print("no problems are registered")
        return 0
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
        if index == 0:
            print("  ".join("-" * width for width in widths) + "  " + "-" * 7)
    return 0


def _run(args: argparse.Namespace) -> int:
    from descentlab.lab.comparison import build_configurations
    from descentlab.lab.labels import configuration_label
    from descentlab.lab.live_log import LiveLogRunner, parse_log
    from descentlab.lab.runner import run_spec
    from descentlab.lab.store import RunStore
    from descentlab.problems import get_problem

    settings, _ = collect_settings(args)
    if args.variant is not None:
        settings["variant"] = args.variant
    if not args.problem or not args.optimizer:
        raise SettingError(
            "run needs --problem and --optimizer (see `descentlab problems`, `descentlab optimizers`)"
        )
    seed = parse_seeds(args.seed if args.seed is not None else 0)
    if len(seed) != 1:
        raise SettingError("run takes one --seed; use compare for several")
    problem = get_problem(str(args.problem))
    (configuration,) = build_configurations([str(args.optimizer)], [problem], settings, [], sweep=False)
    spec = configuration.spec(seed[0])
    log = parse_log(args.log if args.log is not None else "none")
    out = ensure_writable(args.out or DEFAULT_OUT)
    with RunStore(out) as store:
        if spec.run_id in store.completed_run_ids():
            run = next(run for run in store.runs(purpose=None) if run["run_id"] == spec.run_id)
            print(
                f"run {spec.run_id} ({configuration_label(spec)}, seed {spec.seed}) "
                f"is already stored in {out}"
            )
            outcome, summary = run["outcome"], run["summary"]
        else:
            result = (LiveLogRunner(str(out), log, problem.name) if log else run_spec)(spec)
            store.save(result, purpose="run")
            outcome, summary = result.outcome, result.summary
    final, test = summary.final_metric, summary.test_metric
    text = f"final validation {problem.metric} = {'-' if final is None else f'{final:.6g}'}"
    if test is not None:
        text += f", test {problem.metric} = {test:.6g}"
    print(
        f"run {spec.run_id} ({configuration_label(spec)}, seed {spec.seed}): {outcome} after "
        f"{summary.steps} steps in {summary.seconds:.2f} s; {text}"
    )
    return 0


def _compare_names(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    from descentlab.optim.registry import optimizer_classes
    from descentlab.problems import all_problems

    if args.optimizers is not None and not _split_list(args.optimizers):
        raise SettingError("--optimizers is empty; name some, e.g. --optimizers SGD,Adam, or 'all'")
    if args.problems is not None and not _split_list(args.problems):
        raise SettingError("--problems is empty; name some (see `descentlab problems`)")
    optimizers = _split_list(args.optimizers) if args.optimizers is not None else list(DEFAULT_OPTIMIZERS)
    if [name.lower() for name in optimizers] == ["all"]:
        optimizers = [cls.__name__ for cls in optimizer_classes().values()]
    problems = _split_list(args.problems) if args.problems is not None else []
    if not problems:
        problems = [problem.name for problem in all_problems() if "default" in problem.tags]
        if not problems:
            raise SettingError("no problem is tagged 'default'; name some with --problems")
    return optimizers, problems


def _compare(args: argparse.Namespace) -> int:
    from descentlab.lab.comparison import LR_GRID, run_comparison
    from descentlab.lab.live_log import parse_log
    from descentlab.lab.report import write_report

    settings, vary = collect_settings(args)
    is_default = not (args.optimizers or args.problems or settings or vary or args.seeds or args.no_sweep)
    optimizers, problems = _compare_names(args)
    seeds = parse_seeds(args.seeds if args.seeds is not None else DEFAULT_SEEDS)
    jobs = parse_int("--jobs", args.jobs, minimum=1) if args.jobs is not None else DEFAULT_JOBS
    no_sweep = parse_bool("no_sweep", args.no_sweep) if args.no_sweep is not None else False
    log = parse_log(args.log if args.log is not None else "none")
    from descentlab.lab.executors import pool_factory

    executor = "processes" if args.executor is None else str(args.executor)
    pools = pool_factory(executor, None if args.address is None else str(args.address))
    out = ensure_writable(args.out or DEFAULT_OUT)
    summary = run_comparison(
        str(out),
        optimizers,
        problems,
        seeds,
        settings=settings,
        vary=vary,
        lr_grid=None if no_sweep else LR_GRID,
        name=args.name or (DEFAULT_COMPARISON if is_default else None),
        jobs=jobs,
        log=log,
        pool_factory=pools,
    )
    edges = sum(c.edge is not None for c in summary.configurations if c.swept)
    print(
        f"comparison {summary.name!r}: {len(summary.configurations)} configurations, "
        f"{summary.ran} runs trained, {summary.skipped} already stored, {summary.diverged} diverged"
        + (f"; {edges} chosen learning rates at the edge of the sweep's bound" if edges else ""),
        file=sys.stderr,
    )
    print(write_report(out).resolve())
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.config:
        from descentlab.lab.config_file import load_config

        config = load_config(args.config)
        unknown = sorted(set(config) - {"dir", "out", "storage", "jobs"})
        if unknown:
            raise SettingError(
                f"unknown option(s) {', '.join(unknown)} in {args.config}; allowed: dir, out, storage, jobs"
            )
        if args.dir is None:
            args.dir = config.get("dir") or config.get("out")
        for key in ("storage", "jobs"):
            if getattr(args, key) is None:
                setattr(args, key, config.get(key))
    folder = Path(args.dir or DEFAULT_OUT)
    from descentlab.lab.report import write_report
    from descentlab.lab.store import DATABASE_NAME

    if args.storage is not None:
        from descentlab._cli.tune import finish_studies

        jobs = parse_int("--jobs", args.jobs, minimum=1) if args.jobs is not None else DEFAULT_JOBS
        finish_studies(ensure_writable(folder), str(args.storage), jobs)
    elif args.jobs is not None:
        raise SettingError("--jobs is for the re-runs of --storage; give --storage URL or drop --jobs")
    if not (folder / DATABASE_NAME).is_file():
        raise SettingError(
            f"{str(folder)!r} holds no results ({DATABASE_NAME} is missing); run `descentlab compare` first"
        )
    if args.to is not None:
        ensure_writable(args.to, "the report to --to")
    else:
        ensure_writable(folder, "the report to", "pass --to FOLDER to write it elsewhere")
    print(write_report(folder, args.to).resolve())
    return 0
