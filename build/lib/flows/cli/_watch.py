"""The ``shotflow watch`` command: a plot of a store that follows its shots as they complete.

Imported only when it runs (see :mod:`flows.cli._main`); like ``show`` it imports the store's
readers and matplotlib, never Prefect. It only reads the store, by polling (a store on another
machine's share sends no file events), so it works on a store that another process, or
another host, is writing. It ends when the run ends (finished, failed, interrupted, crashed),
after a last plot.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tasks.records import FINAL_STATES
from tasks.store import StoreError, StoreQueryError, draw_store, open_sequence, plot_store, store_state

from ._main import EXIT_BAD_INPUT

__all__ = ["watch_command"]

_ENDED = {str(state) for state in FINAL_STATES}


def _error(message: str) -> int:
    print(f"shotflow watch: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _completed(path: Path, state: str) -> int:
    """The number of completed shots; 0 while a running writer is still creating the arrays."""
    try:
        return int(open_sequence(path, completed_only=True).sizes["shot"])
    except StoreError:
        if state in _ENDED:
            raise
        return 0


def _write_png(path: Path, var: str, against: str | None, out: Path) -> None:
    """Plot to a temporary file beside ``out``, then replace ``out``: a viewer never reads half a PNG."""
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp.png")
    try:
        plot_store(path, var, against, temporary)
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)


class _Window:
    """A matplotlib window redrawn in place; ``closed`` once the user closes it."""

    def __init__(self) -> None:
        import matplotlib.pyplot as plt

        if not plt.get_backend().lower().startswith(("qt", "tk", "gtk", "wx", "macosx")):
            raise StoreQueryError(
                f"no window can open here (matplotlib backend {plt.get_backend()!r}, no display?): "
                "write a PNG with -o FILE.png",
                name="-o",
                available=[],
            )
        self._plt = plt
        self._figure = plt.figure(figsize=(6.4, 4.2), layout="constrained")

    @property
    def closed(self) -> bool:
        return not self._plt.fignum_exists(self._figure.number)

    def draw(self, path: Path, var: str, against: str | None) -> None:
        self._figure.clf()
        draw_store(path, var, against, self._figure.add_subplot())
        self._figure.canvas.draw_idle()

    def wait(self, seconds: float) -> None:
        self._plt.pause(seconds)  # runs the window's event loop meanwhile


def watch_command(args: argparse.Namespace) -> int:
    """``shotflow watch STORE --plot VAR [--against PARAM] [-o FILE.png] [--every SECONDS]``.

    Redraws whenever the number of completed shots changes, checking every ``--every``
    seconds; with ``-o`` the PNG is replaced atomically, else a window is redrawn. Exits 0
    when the run has ended (or the window is closed), 2 for bad input.
    """
    path: Path = args.store
    if args.every <= 0:
        return _error(f"--every {args.every}: expected a positive number of seconds")
    if args.output is not None and args.output.suffix.lower() != ".png":
        return _error(f"-o {args.output}: expected a .png file")
    try:
        store_state(path)  # a shotflow store, or a clear refusal
        window = _Window() if args.output is None else None
    except StoreError as exc:  # StoreQueryError included
        return _error(str(exc))
    drawn = 0
    while True:
        state = store_state(path)["state"]  # read first: the count below includes every shot before the end
        completed = _completed(path, state)
        if completed != drawn and completed > 0:
            try:
                if window is not None:
                    window.draw(path, args.plot, args.against)
                else:
                    _write_png(path, args.plot, args.against, args.output)
            except StoreQueryError as exc:  # an unknown variable or parameter: bad input
                return _error(str(exc))
            drawn = completed
            print(f"{completed} shots plotted ({state})" + (f": {args.output}" if args.output else ""), flush=True)
        if state in _ENDED:
            print(f"the run is {state}: {drawn} shots plotted", flush=True)
            return 0
        if window is None:
            time.sleep(args.every)
            continue
        window.wait(args.every)
        if window.closed:
            return 0
