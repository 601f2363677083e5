"""The ``shotflow show`` command: a store's summary, and a PNG plot with ``--plot``.

Imported only when it runs (see :mod:`flows.cli._main`); it imports the store's readers, not
Prefect, and matplotlib only with ``--plot``.
"""

from __future__ import annotations

import argparse

from tasks.store import StoreQueryError, describe_store, plot_store

from ._main import EXIT_BAD_INPUT

__all__ = ["show_command"]


def _error(message: str) -> int:
    """Print ``shotflow show: error: MESSAGE`` on stderr (rich, imported for it); the exit code of bad input."""
    from rich.console import Console

    Console(stderr=True).print(f"shotflow show: error: {message}")
    return EXIT_BAD_INPUT


def show_command(args: argparse.Namespace) -> int:
    """``shotflow show STORE [--plot VAR [--against PARAM] -o FILE]``; bad input exits with code 2."""
    if args.plot and not args.output:
        return _error("--plot needs -o FILE (the PNG to write)")
    if args.against and not args.plot:
        return _error("--against needs --plot VAR")
    try:
        against = plot_store(args.store, args.plot, args.against, args.output) if args.plot else None
    except StoreQueryError as exc:  # an unknown variable or parameter: bad input
        return _error(str(exc))
    print(describe_store(args.store))
    if args.plot:
        print(f"plot of {args.plot} against {against} written to {args.output}")
    return 0
