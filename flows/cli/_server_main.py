"""Entry point of the managed local Prefect server: ``python -m flows.cli._server_main --port P --idle S``.

A database that does not exist yet is first made from the schema Prefect's migrations make
(:mod:`flows.cli._prefect_database`). Serves Prefect's API and UI (with its background
services) on 127.0.0.1 with uvicorn, and stops after ``--idle`` seconds without an HTTP
request. SIGTERM (``shotflow server stop``) and SIGINT shut it down gracefully; uvicorn
handles both.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from ._prefect_database import prepare_server_database

__all__ = ["main"]

logger = logging.getLogger(__name__)

IDLE_CHECK_INTERVAL = 5.0
"""Seconds between two checks of the idle time."""

_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _IdleClock:
    """ASGI middleware that remembers when the last request arrived."""

    def __init__(self, app: Callable[[_Scope, _Receive, _Send], Awaitable[None]]) -> None:
        self.app = app
        self.last_request = time.monotonic()

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] in ("http", "websocket"):
            self.last_request = time.monotonic()
        await self.app(scope, receive, send)


async def _serve(port: int, idle: float) -> None:
    import uvicorn
    from prefect.server.api.server import create_app

    clock = _IdleClock(create_app(final=True))
    server = uvicorn.Server(uvicorn.Config(clock, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))

    async def stop_when_idle() -> None:
        while not server.should_exit:
            await anyio.sleep(IDLE_CHECK_INTERVAL)
            if time.monotonic() - clock.last_request > idle:
                logger.warning("no request for %.0f s: the local Prefect server stops", idle)
                server.should_exit = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_when_idle)
        await server.serve()
        tg.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    """Run the server until it is idle for ``--idle`` seconds or receives SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m flows.cli._server_main")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle", type=float, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prepare_server_database()  # a new database from the shipped schema: no migrations to run
    anyio.run(_serve, args.port, args.idle)


if __name__ == "__main__":
    main()
