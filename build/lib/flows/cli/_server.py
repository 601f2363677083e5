"""The ``shotflow server status|stop`` command, on the local Prefect server of :mod:`flows.cli._local_server`.

Imported only when it runs (see :mod:`flows.cli._main`).
"""

from __future__ import annotations

import argparse

from ._local_server import prefect_home, running_server, stop_server

__all__ = ["server_command"]

EXIT_NOT_RUNNING = 3
"""``shotflow server status`` when no local server runs."""


def server_command(args: argparse.Namespace) -> int:
    """``status``: print where the server runs (exit 3 if none does); ``stop``: stop it."""
    home = prefect_home()
    if args.action == "stop":
        stopped = stop_server(home)
        print(f"stopped the local Prefect server (pid {stopped.pid})" if stopped else "no local Prefect server running")
        return 0
    info = running_server(home)
    if info is None:
        print(f"no local Prefect server running for {home}")
        return EXIT_NOT_RUNNING
    print(f"running: {info.ui_url} (API {info.api_url}), pid {info.pid}, PREFECT_HOME {home}")
    return 0
