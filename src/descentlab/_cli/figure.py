"""``descentlab figure``: one command per textbook figure (see :mod:`descentlab.figures`)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``figure`` sub-command."""
    from descentlab._cli.lab import DEFAULT_OUT
    from descentlab.figures.base import PNG_DPI

    figure = subparsers.add_parser(
        "figure",
        help="make a textbook figure (PNG and SVG) through the lab and add it to the folder's report",
        description="Runs what the figure needs through the lab (stored in the folder, skipped when "
        "done), writes figures/NAME.png and figures/NAME.svg and re-renders the folder's report.",
    )
    figure.add_argument("name", nargs="?", help="figure name (see --list)")
    figure.add_argument("--list", action="store_true", help="list the figures and what each shows")
    figure.add_argument("--out", help=f"results folder (default ./{DEFAULT_OUT})")
    figure.add_argument(
        "--dpi",
        type=int,
        default=PNG_DPI,
        help=f"PNG resolution (default {PNG_DPI}; 60 makes README-sized files)",
    )
    figure.set_defaults(handler=_figure)


def _figure(args: argparse.Namespace) -> int:
    from descentlab._cli.lab import DEFAULT_OUT, ensure_writable
    from descentlab.figures import FIGURES, get_figure, make_figure

    if args.list:
        width = max(len(name) for name in FIGURES)
        for name, definition in FIGURES.items():
            print(f"{name.ljust(width)}  {definition.summary}")
        return 0
    if not args.name:
        raise ValueError("figure needs a NAME; `descentlab figure --list` names them")
    definition = get_figure(args.name)
    out = ensure_writable(args.out or DEFAULT_OUT)
    result = make_figure(definition, out, dpi=args.dpi)
    from descentlab.lab.report import write_report

    report = write_report(out)
    print(
        f"figure {result.name}: {result.trained} runs trained, {result.skipped} already stored, "
        f"{result.seconds:.2f} s",
        file=sys.stderr,
    )
    print(result.png.resolve())
    print(result.svg.resolve())
    print(report.resolve())
    return 0
