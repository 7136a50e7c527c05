"""``descentlab optimizers`` and ``descentlab demo``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``optimizers`` and ``demo`` sub-commands."""
    optimizers = subparsers.add_parser("optimizers", help="list every optimizer with its paper and variants")
    optimizers.set_defaults(handler=_list_optimizers)
    demo = subparsers.add_parser("demo", help="train a small model with three optimizers and print a table")
    demo.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default 300)")
    demo.set_defaults(handler=_demo)


def _list_optimizers(args: argparse.Namespace) -> int:
    from descentlab.optim.registry import optimizer_table

    print(optimizer_table())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from descentlab.demo import run_demo

    print(run_demo(steps=args.steps))
    return 0
