"""``descentlab problems``, ``run``, ``compare`` and ``report``: the lab on the command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``problems``, ``run``, ``compare`` and ``report`` sub-commands."""
    problems = subparsers.add_parser("problems", help="list every problem the lab can train on")
    problems.set_defaults(handler=_list_problems)

    run = subparsers.add_parser("run", help="train one optimizer on one problem and store the run")
    run.add_argument("--problem", required=False, help="problem name (see `descentlab problems`)")
    run.add_argument("--optimizer", required=False, help="optimizer name (see `descentlab optimizers`)")
    run.add_argument("--lr", type=_positive_float, help="learning rate (default: the optimizer's default)")
    run.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another optimizer hyperparameter, e.g. --hp momentum=0.9 (repeatable)",
    )
    run.add_argument("--variant", help="optimizer variant (see `descentlab optimizers`)")
    run.add_argument(
        "--schedule", help="learning-rate schedule: constant, step, exponential, cosine, onecycle"
    )
    run.add_argument(
        "--seed", type=_non_negative_int, default=0, help="seed of data, order and init (default 0)"
    )
    _add_budget_options(run)
    _add_common_output(run)
    run.set_defaults(handler=_run)

    compare = subparsers.add_parser(
        "compare",
        help="compare optimizers on problems over seeds, then write the report",
        description="With no options: the default comparison (classic optimizers on the problems tagged "
        "'default'), with a learning-rate sweep per optimizer and problem.",
    )
    compare.add_argument("--optimizers", help=f"comma-separated (default: {','.join(DEFAULT_OPTIMIZERS)})")
    compare.add_argument("--problems", help="comma-separated (default: the problems tagged 'default')")
    compare.add_argument(
        "--seeds", default=DEFAULT_SEEDS, help=f"comma-separated seeds (default {DEFAULT_SEEDS})"
    )
    compare.add_argument(
        "--jobs",
        type=_positive_int,
        default=DEFAULT_JOBS,
        help=f"parallel worker processes (default: the {DEFAULT_JOBS} cores this process may use)",
    )
    compare.add_argument("--lr", type=_positive_float, help="one learning rate for all (skips the sweep)")
    compare.add_argument("--no-sweep", action="store_true", help="use each optimizer's default learning rate")
    compare.add_argument("--schedule", help="learning-rate schedule applied to every run")
    _add_budget_options(compare)
    _add_common_output(compare)
    compare.set_defaults(handler=_compare)

    report = subparsers.add_parser("report", help="re-render the report of a results folder from its store")
    report.add_argument("dir", nargs="?", default=None, help=f"results folder (default ./{DEFAULT_OUT})")
    report.add_argument("--config", help="TOML or YAML file of options")
    report.set_defaults(handler=_report)


def _add_budget_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=_positive_int, help="optimizer steps per run (default: per problem)")
    parser.add_argument(
        "--epochs", type=_positive_int, help="passes over the training data (instead of --steps)"
    )
    parser.add_argument("--batch-size", type=_positive_int, help="minibatch size (default: per problem)")


def _add_common_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"results folder (default ./{DEFAULT_OUT})")
    parser.add_argument("--config", help="TOML or YAML file of options (command-line options win)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def _parse_value(text: str) -> Any:
    """``0.9`` -> float, ``true`` -> bool, ``0.9,0.99`` -> tuple, else the text."""
    if "," in text:
        return tuple(_parse_value(part) for part in text.split(","))
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _apply_config(args: argparse.Namespace, parser_defaults: dict[str, Any]) -> None:
    """Fill options not given on the command line from ``--config``; unknown keys are an error."""
    if not getattr(args, "config", None):
        return
    from descentlab.lab.config_file import load_config

    allowed = sorted(key for key in vars(args) if key not in ("handler", "config"))
    for key, value in load_config(args.config).items():
        if key not in allowed:
            raise ValueError(f"unknown option {key!r} in {args.config}; allowed: {', '.join(allowed)}")
        if getattr(args, key) == parser_defaults.get(key):
            if isinstance(value, list):
                value = ",".join(str(item) for item in value)
            if key == "hp" and isinstance(value, dict):
                value = [f"{name}={item}" for name, item in value.items()]
            setattr(args, key, value)


def _split_names(text: str | None) -> list[str]:
    return [part.strip() for part in str(text).split(",") if part.strip()] if text else []


def _parse_seeds(text: Any) -> list[int]:
    seeds = []
    for part in _split_names(str(text)):
        try:
            seed = int(part)
        except ValueError:
            raise ValueError(f"--seeds must be comma-separated whole numbers >= 0, got {part!r}") from None
        if seed < 0:
            raise ValueError(f"--seeds must be >= 0, got {seed}")
        seeds.append(seed)
    if not seeds:
        raise ValueError("--seeds needs at least one seed, e.g. --seeds 0,1,2")
    return seeds


_DEFAULTS = {
    "run": {"hp": [], "seed": 0, "out": DEFAULT_OUT},
    "compare": {"seeds": DEFAULT_SEEDS, "jobs": DEFAULT_JOBS, "no_sweep": False, "out": DEFAULT_OUT},
    "report": {},
}


def _list_problems(args: argparse.Namespace) -> int:
    from descentlab.problems import all_problems

    rows = [("problem", "kind", "steps", "metric", "target", "tags", "summary")]
    for problem in all_problems():
        rows.append(
            (
                problem.name,
                problem.kind,
                str(problem.budget_steps),
                problem.metric,
                "-" if problem.target is None else f"{problem.target:g}",
                ",".join(problem.tags) or "-",
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
    _apply_config(args, _DEFAULTS["run"])
    from descentlab.lab.runner import run_spec
    from descentlab.lab.spec import RunSpec
    from descentlab.lab.store import RunStore
    from descentlab.optim.registry import get_optimizer_class
    from descentlab.problems import get_problem

    if not args.problem or not args.optimizer:
        raise ValueError(
            "run needs --problem and --optimizer (see `descentlab problems`, `descentlab optimizers`)"
        )
    get_problem(args.problem)
    get_optimizer_class(args.optimizer)
    hyperparameters: dict[str, Any] = {}
    for item in args.hp:
        name, separator, value = str(item).partition("=")
        if not separator or not name:
            raise ValueError(f"--hp takes NAME=VALUE, e.g. --hp momentum=0.9; got {item!r}")
        hyperparameters[name.strip()] = _parse_value(value.strip())
    if args.lr is not None:
        hyperparameters["lr"] = float(args.lr)
    if args.steps is not None and args.epochs is not None:
        raise ValueError("give --steps or --epochs, not both")
    spec = RunSpec.create(
        args.problem,
        args.optimizer,
        hyperparameters,
        variant=args.variant,
        schedule={"name": args.schedule} if args.schedule else None,
        seed=int(args.seed),
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
    )
    with RunStore(args.out) as store:
        if spec.run_id in store.completed_run_ids():
            run = next(run for run in store.runs(purpose=None) if run["run_id"] == spec.run_id)
            print(f"run {spec.run_id} is already stored in {args.out}; not repeated")
            outcome, summary = run["outcome"], run["summary"]
        else:
            result = run_spec(spec)
            store.save(result, purpose="run")
            outcome, summary = result.outcome, result.summary
    metric = get_problem(args.problem).metric
    final = summary.get("final_metric")
    print(
        f"run {spec.run_id}: {outcome} after {summary['steps']} steps in {summary['seconds']:.2f} s; "
        f"final {metric} = {'-' if final is None else f'{final:.6g}'}"
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    _apply_config(args, _DEFAULTS["compare"])
    from descentlab.lab.comparison import run_comparison
    from descentlab.lab.report import write_report
    from descentlab.optim.registry import optimizer_classes
    from descentlab.problems import all_problems

    optimizers = _split_names(args.optimizers)
    if not optimizers:
        known = optimizer_classes()
        optimizers = [name for name in DEFAULT_OPTIMIZERS if name.lower() in known]
        missing = [name for name in DEFAULT_OPTIMIZERS if name.lower() not in known]
        if missing:
            print(
                f"note: default optimizers not available in this build: {', '.join(missing)}", file=sys.stderr
            )
    problems = _split_names(args.problems)
    if not problems:
        problems = [problem.name for problem in all_problems() if "default" in problem.tags]
        if not problems:
            raise ValueError(
                "no problem is tagged 'default'; name some with --problems (see `descentlab problems`)"
            )
    if args.steps is not None and args.epochs is not None:
        raise ValueError("give --steps or --epochs, not both")
    hyperparameters = {name: {"lr": float(args.lr)} for name in optimizers} if args.lr else None
    summary = run_comparison(
        args.out,
        optimizers,
        problems,
        _parse_seeds(args.seeds),
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        hyperparameters=hyperparameters,
        schedule={"name": args.schedule} if args.schedule else None,
        lr_grid=None if args.no_sweep else _default_grid(),
        jobs=int(args.jobs),
    )
    print(
        f"{summary.ran} runs trained, {summary.skipped} already stored, {summary.diverged} diverged",
        file=sys.stderr,
    )
    print(write_report(args.out).resolve())
    return 0


def _default_grid() -> tuple[float, ...]:
    from descentlab.lab.comparison import LR_GRID

    return LR_GRID


def _report(args: argparse.Namespace) -> int:
    if args.config:
        from descentlab.lab.config_file import load_config

        config = load_config(args.config)
        unknown = sorted(set(config) - {"dir", "out"})
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} in {args.config}; allowed: dir")
        if args.dir is None:
            args.dir = config.get("dir") or config.get("out")
    folder = Path(args.dir or DEFAULT_OUT)
    from descentlab.lab.store import DATABASE_NAME

    if not (folder / DATABASE_NAME).is_file():
        raise ValueError(
            f"{str(folder)!r} holds no results ({DATABASE_NAME} is missing); run `descentlab compare` first"
        )
    from descentlab.lab.report import write_report

    print(write_report(folder).resolve())
    return 0
