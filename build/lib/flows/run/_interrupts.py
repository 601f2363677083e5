"""Interrupting a run: Prefect cancellation and SIGINT/SIGTERM become one :class:`Interrupt`."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from prefect import get_client
from prefect.context import FlowRunContext

from tasks.records import raise_first

__all__ = [
    "CANCEL_POLL_INTERVAL",
    "INTERRUPT_SIGNALS",
    "PREFECT_CANCEL",
    "Interrupt",
    "interrupted_by",
    "watch_interrupts",
]

logger = logging.getLogger(__name__)

CANCEL_POLL_INTERVAL = 1.0
"""Seconds between two checks of the flow run's state for a cancellation request."""
INTERRUPT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))
"""Signals that interrupt a run (a service manager's SIGTERM, a terminal's Ctrl-C)."""
PREFECT_CANCEL = "cancelled from Prefect"
"""The reason of an interrupt seen in the flow run's state (a Cancel in the UI, or the API)."""
WORKER_ENV = "PREFECT__FLOW_RUN_ID"
"""Set in a flow run process that a Prefect worker (or runner) started: its SIGTERM is a cancel."""


class Interrupt:
    """Cancels the run's scopes on a request (Prefect cancel, SIGINT, SIGTERM) and remembers why.

    ``reason`` is None until the first request; later requests cancel the scopes again
    but keep the first reason.
    """

    def __init__(self) -> None:
        self._scopes: list[anyio.CancelScope] = []
        self.reason: str | None = None

    def scope(self) -> anyio.CancelScope:
        """A new scope that the interrupt cancels (at once if it was already requested)."""
        scope = anyio.CancelScope()
        if self.reason is not None:
            scope.cancel()
        self._scopes.append(scope)
        return scope

    def request(self, reason: str) -> None:
        """Interrupt the run: cancel every scope handed out by :meth:`scope`."""
        if self.reason is None:
            self.reason = reason
            logger.warning("interrupt requested: %s", reason)
        for scope in self._scopes:
            scope.cancel()


def interrupted_by(reason: str) -> str:
    """Who interrupted the run, for the physicist: ``by Ctrl-C (received SIGINT)``, ``by a cancel from
    the Prefect UI or API``... A worker's SIGTERM is a cancel from the UI or the API."""
    if reason == PREFECT_CANCEL:
        return "by a cancel from the Prefect UI or API"
    if reason == "received SIGTERM" and os.environ.get(WORKER_ENV):
        return "by a cancel from the Prefect UI or API (the worker's SIGTERM)"
    if reason == "received SIGTERM":
        return "by SIGTERM (received SIGTERM)"
    if reason == "received SIGINT":
        return "by Ctrl-C (received SIGINT)"
    return f"({reason})"


@asynccontextmanager
async def watch_interrupts(interrupt: Interrupt) -> AsyncIterator[None]:
    """Turn Prefect cancellation and signals into ``interrupt`` requests while the body runs.

    The watchers are cancelled when the body ends. The body's own error is raised
    as itself (not inside an exception group).
    """
    try:
        async with anyio.create_task_group() as watchers:
            watchers.start_soon(_watch_signals, interrupt)
            watchers.start_soon(_watch_prefect_cancellation, interrupt)
            try:
                yield
            finally:
                watchers.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise_first(group)


async def _watch_prefect_cancellation(interrupt: Interrupt) -> None:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    flow_run_id = context.flow_run.id
    async with get_client() as client:
        while True:
            await anyio.sleep(CANCEL_POLL_INTERVAL)
            run = None
            try:
                # shielded: cancelling an HTTP call half-way corrupts the client's connection pool
                with anyio.move_on_after(CANCEL_POLL_INTERVAL * 10, shield=True):
                    run = await client.read_flow_run(flow_run_id)
            except Exception as exc:  # noqa: BLE001 - a slow or absent server must not stop the run
                logger.debug("could not read the flow run state: %s", exc)
                continue
            if run is not None and run.state is not None and (run.state.is_cancelling() or run.state.is_cancelled()):
                interrupt.request(PREFECT_CANCEL)
                return


async def _watch_signals(interrupt: Interrupt) -> None:
    """Turn SIGINT/SIGTERM into an interrupt (main thread, POSIX; elsewhere Ctrl-C raises
    KeyboardInterrupt, which the run records as interrupted as well)."""
    if threading.current_thread() is not threading.main_thread() or sys.platform == "win32":
        return
    try:
        with anyio.open_signal_receiver(*INTERRUPT_SIGNALS) as signals:
            async for signum in signals:
                interrupt.request(f"received {signal.Signals(signum).name}")
    finally:
        # Closing the receiver resets SIGTERM to the default action (terminate at once). A
        # worker's SIGTERM that arrives after this watcher stopped (e.g. the state poll saw
        # the cancel first) would kill the process before the store records its final state.
        # Ignore it until the run returns: Prefect's flow engine restores its handler then.
        if hasattr(signal, "SIGTERM"):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Closing it also gives SIGINT back to Python's handler: a burst of Ctrl-C outlasting
        # the watcher raised KeyboardInterrupt in the run's last steps (its Prefect state, the
        # CLI's report). Once an interrupt was requested, further ones are only recorded.
        if interrupt.reason is not None:
            signal.signal(signal.SIGINT, _record_late_interrupt)


def _record_late_interrupt(signum: int, frame: object) -> None:
    """SIGINT after the run was interrupted: it already stops, so the request is only logged."""
    logger.info("%s ignored: the run is already interrupted and recording its end", signal.Signals(signum).name)
