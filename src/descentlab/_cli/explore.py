"""``descentlab explore``: one self-contained HTML page to play with optimizers on a 2-D problem."""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``explore`` sub-command."""
    from descentlab.explore.page import DEFAULT_OPTIMIZERS, STEPS_CAP

    explore = subparsers.add_parser(
        "explore",
        help="write an HTML page with sliders for lr, momentum/betas and the start over a 2-D problem",
        description="Computes every path of the page ahead of time with descentlab's optimizers, over a "
        "grid of slider values, and writes one self-contained HTML page (no network needed).",
    )
    explore.add_argument("--problem", default="gabor", help="a 2-D problem (default gabor)")
    explore.add_argument(
        "--optimizers",
        default=",".join(DEFAULT_OPTIMIZERS),
        help=f"comma-separated optimizer names (default {','.join(DEFAULT_OPTIMIZERS)})",
    )
    explore.add_argument(
        "--steps", type=int, help=f"steps per path (default: the problem's budget, at most {STEPS_CAP})"
    )
    explore.add_argument(
        "--start",
        action="append",
        metavar="X,Y",
        help="a start point (repeat for several; default: the problem's own start and three more); "
        "write --start=-1.5,8.5 when X is negative",
    )
    explore.add_argument("--out", help="the HTML file to write (default explore-PROBLEM.html)")
    explore.set_defaults(handler=_explore)


def _explore(args: argparse.Namespace) -> int:
    from descentlab.explore.page import build_explorer, write_explorer

    started = time.perf_counter()
    names = [name.strip() for name in args.optimizers.split(",") if name.strip()]
    starts = None if args.start is None else [_point(text) for text in args.start]
    explorer = build_explorer(args.problem, names, args.steps, starts)
    path = write_explorer(args.out or f"explore-{args.problem}.html", explorer)
    paths = sum(result.paths.shape[0] * result.paths.shape[1] for result in explorer.optimizers)
    print(
        f"explore {args.problem}: {paths} paths of {explorer.steps} steps, "
        f"{path.stat().st_size / 1e6:.2f} MB, {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    print(path.resolve())
    return 0


def _point(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--start takes two numbers X,Y such as --start=-1.5,8.5; got {text!r}") from None
