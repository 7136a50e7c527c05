"""The ``descentlab`` command. It only parses arguments and hands over to the library.

Each sub-command lives in a module of :mod:`descentlab._cli` exposing ``register(subparsers)``; the
registered handler receives the parsed namespace and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from descentlab import __version__

# One module per group of sub-commands; adding a command group adds a line here.
COMMAND_MODULES = (
    "descentlab._cli.info",
    "descentlab._cli.analysis",
    "descentlab._cli.lab",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="descentlab",
        description="Train with classic and modern optimizers, compare them fairly, and see why one wins.",
    )
    parser.add_argument("--version", action="version", version=f"descentlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``descentlab`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
        return 130
    except ValueError as error:  # bad input from the user: say what was wrong, no traceback
        print(f"descentlab: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
