"""The ``shotflow compact`` command: rewrite an old store's per-shot chunks into shards.

Imported only when it runs (see :mod:`flows.cli._main`); it imports the store, not Prefect.
"""

from __future__ import annotations

import argparse
import sys

from tasks.store import StoreBusyError, StoreCompactionError, StoreError, compact_store

from ._main import EXIT_BAD_INPUT

__all__ = ["compact_command"]


def compact_command(args: argparse.Namespace) -> int:
    """``shotflow compact STORE``: exit 0 once compact; 2 for a store being written, one whose
    run is in progress, or a path that is not a store."""
    try:
        report = compact_store(args.store)
    except (StoreBusyError, StoreCompactionError) as exc:
        print(f"shotflow compact: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StoreError as exc:
        if args.store.joinpath("zarr.json").is_file():
            raise  # a store that could not be compacted (a disk error...): exit 1
        print(f"shotflow compact: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(report.describe())
    return 0
