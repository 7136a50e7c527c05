"""The ``descentlab`` command. It only parses arguments and hands over to the library.

Each sub-command lives in a module of :mod:`descentlab._cli` exposing ``register(subparsers)``; the
registered handler receives the parsed namespace and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sqlite3
import sys

from descentlab import __version__

# One module per group of sub-commands; adding a command group adds a line here.
COMMAND_MODULES = (
    "descentlab._cli.info",
    "descentlab._cli.analysis",
    "descentlab._cli.lab",
    "descentlab._cli.tune",
    "descentlab._cli.figure",
    "descentlab._cli.explore",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="descentlab",
        description="Train with classic and modern optimizers, compare them fairly, and see why one wins.",
    )
    parser.add_argument("--version", action="version", version=f"descentlab {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of any error")
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
    except BrokenPipeError:
        # the reader (`| head`) left: stop quietly, and keep Python from complaining at exit too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, TypeError, OSError, sqlite3.Error) as error:
        if args.debug:
            raise
        # bad input or a file the user must fix: say what was wrong in one line, no traceback
        print(f"descentlab: error: {_one_line(error)} (--debug shows the traceback)", file=sys.stderr)
        return 2


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.strerror or error}: {error.filename}"
    if isinstance(error, sqlite3.Error):
        return f"the results database failed: {error}"
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    raise SystemExit(main())
