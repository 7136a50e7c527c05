"""``descentlab landscape``, ``descentlab hessian`` and ``descentlab lr-find`` on any registered problem.

Each command builds the problem's task for ``--seed``, runs one tool of :mod:`descentlab.analysis`, prints
a short summary and writes a JSON file and a figure into ``--out`` (atomically). The curvature and
landscape commands evaluate the loss on a fixed set of ``--batches`` minibatches with the model in eval
mode, so that the loss is a deterministic function of the parameters.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import torch

from descentlab.optim.registry import get_optimizer_class, optimizer_classes, step_protocol


def resolve_optimizer(name: str) -> type[torch.optim.Optimizer]:
    """The optimizer called ``name``: a descentlab optimizer, else a ``torch.optim`` class.

    Only optimizers that step from a gradient qualify: the range test and trajectories call
    ``step()`` without a closure.
    """
    try:
        cls = get_optimizer_class(name)
    except ValueError:
        candidate = getattr(torch.optim, name, None)
        if not (isinstance(candidate, type) and issubclass(candidate, torch.optim.Optimizer)) or (
            candidate is torch.optim.Optimizer
        ):
            raise
        cls = candidate
    if step_protocol(cls) != "gradient":
        usable = [c.__name__ for c in optimizer_classes().values() if step_protocol(c) == "gradient"]
        raise ValueError(
            f"optimizer {cls.__name__!r} needs a closure per step, which this command does not supply; "
            f"choose one of {', '.join(usable)}"
        )
    return cls


# Allowed ranges, checked in the handlers so that a bad value reaches ``cli.main`` as a ValueError (an
# argparse type error would replace our message with a generic "invalid value").
_LIMITS: dict[str, tuple[float, float, bool]] = {  # option: (low, high, low end excluded)
    "seed": (0, 2**63 - 1, False),
    "batches": (1, 1000, False),
    "resolution": (2, 201, False),
    "extent": (0, 100, True),
    "train_steps": (0, 100_000, False),
    "lr": (0, 1e6, True),
    "top_k": (1, 100, False),
    "lanczos_steps": (2, 1000, False),
    "trace_samples": (2, 10_000, False),
    "density_vectors": (1, 100, False),
    "max_exact": (0, 20_000, False),
    "start_lr": (0, 1e6, True),
    "end_lr": (0, 1e6, True),
    "steps": (10, 10_000, False),
    "divergence_factor": (1, 1e6, True),
}


def validate_options(args: argparse.Namespace) -> None:
    """Raise ValueError naming the option, its allowed range and the bad value, for the first one outside."""
    for name, (low, high, low_open) in _LIMITS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or value > high:
            option = "--" + name.replace("_", "-")
            raise ValueError(
                f"{option} must be in {'(' if low_open else '['}{low:g}, {high:g}], got {value:g}"
            )


def _add_common(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument(
        "--problem", required=True, help="registered problem name (see `descentlab problems`)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument(
        "--out", type=Path, default=Path(default_out), help=f"output folder (default {default_out})"
    )


def _add_batches(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batches",
        type=int,
        default=1,
        help="minibatches averaged into the fixed loss, 1..1000 (default 1)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``landscape``, ``hessian`` and ``lr-find`` sub-commands."""
    landscape = subparsers.add_parser(
        "landscape",
        help="2-D loss slice along filter-normalised directions, and a training trajectory",
        description="Loss on a 2-D slice through the parameters along two random filter-normalised "
        "directions (Li et al. 2018). The slice goes through the initial parameters, or through the final "
        "ones after --train-steps steps, whose trajectory is then also drawn on its top-2 PCA plane.",
    )
    _add_common(landscape, "descentlab-runs/analysis")
    _add_batches(landscape)
    landscape.add_argument(
        "--resolution",
        type=int,
        default=21,
        help="grid points per axis, 2..201",
    )
    landscape.add_argument(
        "--extent",
        type=float,
        default=1.0,
        help="the slice covers [-extent, extent] along both directions, in (0, 100] (default 1)",
    )
    landscape.add_argument(
        "--train-steps",
        type=int,
        default=0,
        help="if > 0, train this many steps first and also plot the trajectory on its PCA plane",
    )
    landscape.add_argument(
        "--optimizer", default="SGD", help="torch.optim class for --train-steps (default SGD)"
    )
    landscape.add_argument(
        "--lr",
        type=float,
        default=0.01,
        help="learning rate for training",
    )
    landscape.set_defaults(handler=_landscape)

    hessian = subparsers.add_parser(
        "hessian", help="Hessian spectrum at the initial point: top-k, trace, density"
    )
    _add_common(hessian, "descentlab-runs/analysis")
    _add_batches(hessian)
    hessian.add_argument("--top-k", type=int, default=5, help="eigenvalues, 1..100")
    hessian.add_argument(
        "--lanczos-steps",
        type=int,
        default=40,
        help="Lanczos iterations for top-k and density, 2..1000 (capped at the parameter count)",
    )
    hessian.add_argument(
        "--trace-samples",
        type=int,
        default=100,
        help="Hutchinson samples",
    )
    hessian.add_argument(
        "--density-vectors",
        type=int,
        default=5,
        help="SLQ vectors, 1..100",
    )
    hessian.add_argument(
        "--max-exact",
        type=int,
        default=2000,
        help="also form the exact Hessian when the parameter count is at most this, 0..20000 (default 2000)",
    )
    hessian.set_defaults(handler=_hessian)

    lr_find = subparsers.add_parser("lr-find", help="learning-rate range test (Smith 2017) with a suggestion")
    _add_common(lr_find, "descentlab-runs/analysis")
    lr_find.add_argument(
        "--optimizer", default="SGD", help="torch.optim class name, e.g. SGD, Adam (default SGD)"
    )
    lr_find.add_argument(
        "--start-lr",
        type=float,
        default=1e-7,
        help="default 1e-7",
    )
    lr_find.add_argument("--end-lr", type=float, default=10.0, help="default 10")
    lr_find.add_argument("--steps", type=int, default=100, help="10..10000")
    lr_find.add_argument(
        "--divergence-factor",
        type=float,
        default=4.0,
        help="stop when the smoothed loss exceeds this times its best, > 1 (default 4)",
    )
    lr_find.set_defaults(handler=_lr_find)


def _task(args: argparse.Namespace):
    from descentlab.problems import get_problem

    problem = get_problem(args.problem)
    torch.manual_seed(args.seed)
    return problem, problem.task(args.seed)


def _fixed_loss(task, batches: int) -> Callable[[], torch.Tensor]:
    fixed = [next(task.batches) for _ in range(batches)]
    return lambda: sum(task.loss(batch) for batch in fixed) / len(fixed)


def _only_one_dimensional(model: torch.nn.Module) -> bool:
    return all(parameter.dim() <= 1 for parameter in model.parameters() if parameter.requires_grad)


def _landscape(args: argparse.Namespace) -> int:
    validate_options(args)
    from descentlab.analysis import (
        loss_surface_2d,
        parameter_vector,
        plot_loss_surface,
        plot_trajectory,
        project_trajectory,
        save_figure,
        trajectory_loss_surface,
        write_json,
    )

    problem, task = _task(args)
    optimizer_class = resolve_optimizer(args.optimizer) if args.train_steps else None
    model = task.model
    rule = "normalize" if _only_one_dimensional(model) else "zero"
    if rule == "normalize":
        print("every parameter is 1-D: each is normalised as one filter (one_dimensional='normalize')")
    points = [parameter_vector(model)]
    if optimizer_class is not None:
        model.train()
        optimizer = optimizer_class(model.parameters(), lr=args.lr)
        for _ in range(args.train_steps):
            optimizer.zero_grad()
            task.loss(next(task.batches)).backward()
            optimizer.step()
            points.append(parameter_vector(model))
    model.eval()
    loss_fn = _fixed_loss(task, args.batches)
    surface = loss_surface_2d(
        model,
        loss_fn,
        x_range=(-args.extent, args.extent),
        y_range=(-args.extent, args.extent),
        resolution=args.resolution,
        seed=args.seed,
        one_dimensional=rule,
    )
    stem = args.out / f"{problem.name}-seed{args.seed}"
    written = [save_figure(plot_loss_surface(surface), f"{stem}-landscape.png")]
    record = {
        "problem": problem.name,
        "seed": args.seed,
        "directions": f"filter-normalised (Li et al. 2018), one_dimensional={rule!r}",
        "xs": surface.xs.tolist(),
        "ys": surface.ys.tolist(),
        "losses": surface.losses.tolist(),
        "center_loss": surface.center_loss,
        "loss_evaluations": surface.cost.evaluations,
    }
    if optimizer_class is not None:
        projection = project_trajectory(points)
        plane = trajectory_loss_surface(model, loss_fn, projection, resolution=args.resolution)
        written.append(save_figure(plot_trajectory(projection, plane), f"{stem}-trajectory.png"))
        record["trajectory"] = {
            "optimizer": args.optimizer,
            "lr": args.lr,
            "steps": args.train_steps,
            "coordinates": projection.coordinates.tolist(),
            "explained_variance_ratio": projection.explained_variance_ratio.tolist(),
        }
    written.append(write_json(record, f"{stem}-landscape.json"))
    print(
        f"centre loss {surface.center_loss:.6g}; loss range on the slice "
        f"[{float(surface.losses.nan_to_num(nan=math.inf).min()):.6g}, "
        f"{float(surface.losses.nan_to_num(nan=-math.inf).max()):.6g}]"
    )
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


def _hessian(args: argparse.Namespace) -> int:
    validate_options(args)
    from descentlab.analysis import (
        HessianOperator,
        hessian_eigenvalues,
        hutchinson_trace,
        label_from_evidence,
        plot_spectral_density,
        save_figure,
        spectral_density,
        top_eigenvalues,
        write_json,
    )

    problem, task = _task(args)
    task.model.eval()
    loss_fn = _fixed_loss(task, args.batches)
    operator = HessianOperator(task.model, loss_fn)
    steps = min(args.lanczos_steps, operator.dim)
    top = top_eigenvalues(
        operator, k=min(args.top_k, operator.dim), steps=max(steps, min(args.top_k, operator.dim))
    )
    trace = hutchinson_trace(operator, samples=args.trace_samples, seed=args.seed)
    density = spectral_density(operator, vectors=args.density_vectors, steps=steps, seed=args.seed)
    record = {
        "problem": problem.name,
        "seed": args.seed,
        "parameters": operator.dim,
        "loss": float(operator.loss),
        "gradient_norm": float(torch.linalg.vector_norm(operator.gradient)),
        "top_eigenvalues": top.values.tolist(),
        "top_eigenvalue_residuals": top.residual_norms.tolist(),
        "lanczos_steps": top.steps,
        "trace": {
            "estimate": trace.estimate,
            "standard_error": trace.standard_error,
            "samples": trace.samples,
        },
        "density": {
            "grid": density.grid.tolist(),
            "density": density.density.tolist(),
            "sigma": density.sigma,
        },
    }
    print(f"{operator.dim} parameters, loss {float(operator.loss):.6g}, |grad| {record['gradient_norm']:.4g}")
    print("top eigenvalues: " + ", ".join(f"{value:.6g}" for value in top.values.tolist()))
    print(f"trace (Hutchinson, {trace.samples} samples): {trace.estimate:.6g} ± {trace.standard_error:.2g}")
    if operator.dim <= args.max_exact:
        eigenvalues = hessian_eigenvalues(task.model, loss_fn, max_parameters=args.max_exact)
        classification = label_from_evidence(record["gradient_norm"], eigenvalues)
        record["exact_eigenvalues"] = eigenvalues.tolist()
        record["exact_trace"] = float(eigenvalues.sum())
        record["classification"] = classification.label
        print(f"exact trace {float(eigenvalues.sum()):.6g}; point: {classification.explanation()}")
    stem = args.out / f"{problem.name}-seed{args.seed}"
    written = [
        save_figure(plot_spectral_density(density), f"{stem}-hessian-density.png"),
        write_json(record, f"{stem}-hessian.json"),
    ]
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


def _lr_find(args: argparse.Namespace) -> int:
    validate_options(args)
    from descentlab.analysis import lr_range_test, plot_lr_range_test, save_figure, write_json

    if args.end_lr <= args.start_lr:
        raise ValueError(f"--end-lr must be > --start-lr={args.start_lr:g}, got {args.end_lr:g}")
    optimizer_class = resolve_optimizer(args.optimizer)
    problem, task = _task(args)
    task.model.train()
    optimizer = optimizer_class(task.model.parameters(), lr=args.start_lr)
    result = lr_range_test(
        task.model,
        optimizer,
        lambda: task.loss(next(task.batches)),
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        steps=args.steps,
        divergence_factor=args.divergence_factor,
    )
    print(f"{args.optimizer} on {problem.name}: {result.summary()}")
    stem = args.out / f"{problem.name}-seed{args.seed}-{args.optimizer}"
    record = {
        "problem": problem.name,
        "seed": args.seed,
        "optimizer": args.optimizer,
        "learning_rates": result.learning_rates,
        "losses": result.losses,
        "smoothed_losses": result.smoothed_losses,
        "suggestions": result.suggestions,
        "suggestion_rules": {
            "steepest": "lr where the smoothed loss falls fastest per unit log(lr) (fastai 'steep')",
            "minimum/10": "a tenth of the lr at the smallest smoothed loss (fastai 'minimum')",
        },
        "stopped_early": result.stopped_early,
    }
    written = [
        save_figure(plot_lr_range_test(result), f"{stem}-lr-find.png"),
        write_json(record, f"{stem}-lr-find.json"),
    ]
    print("wrote " + ", ".join(str(path) for path in written))
    return 0
