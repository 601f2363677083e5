"""Progress of a running sequence: a Prefect progress artifact and local listeners (the CLI bar)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from uuid import UUID

import anyio
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact

__all__ = ["Progress", "ProgressReporter", "RunStatus", "progress_listener"]

logger = logging.getLogger(__name__)

ARTIFACT_INTERVAL = 1.0
"""Seconds between two updates of the Prefect progress artifact (each one is an HTTP call)."""
HTTP_TIMEOUT = 10.0
"""Seconds one artifact update may take; it is never cancelled half-way."""
LISTENER_INTERVAL = 0.1
"""Seconds between two calls of the local listeners."""


@dataclass(frozen=True)
class Progress:
    """A snapshot of a run: what it is doing, its shots, its store and, at the end, its outcome.

    ``phase`` says what the run is doing or waiting for ("waiting for devices ...",
    "entering devices", "running", ...); ``state`` is the store's final state
    (``finished``, ``failed``, ``interrupted``) once it is recorded, else None.
    """

    completed: int
    expected: int | None
    elapsed: float
    phase: str = "running"
    store: str | None = None
    state: str | None = None
    flow_run_id: str | None = None
    flow_run_name: str | None = None


_listeners: list[Callable[[Progress], None]] = []


@contextmanager
def progress_listener(listener: Callable[[Progress], None]) -> Iterator[None]:
    """Call ``listener`` with a :class:`Progress` about ten times a second while a sequence runs here,
    and at once when its phase changes."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


class RunStatus:
    """The run's current :class:`Progress`: updated by the flow, published to the local listeners."""

    def __init__(self, flow_run_id: str | None = None, flow_run_name: str | None = None) -> None:
        self._start = time.monotonic()
        self._completed: Callable[[], int] = lambda: 0
        self._current = Progress(0, None, 0.0, "starting", flow_run_id=flow_run_id, flow_run_name=flow_run_name)

    def count(self, completed: Callable[[], int], expected: int | None) -> None:
        """Read the completed shots from ``completed`` from now on."""
        self._completed = completed
        self._current = replace(self._current, expected=expected)

    def update(self, **changes: object) -> None:
        """Change fields of the progress (``phase``, ``store``, ``state``) and tell the listeners now."""
        self._current = replace(self._current, **changes)  # type: ignore[arg-type]
        self.publish()

    def snapshot(self) -> Progress:
        """The current progress."""
        return replace(self._current, completed=self._completed(), elapsed=time.monotonic() - self._start)

    def publish(self) -> None:
        """Call every local listener with the current snapshot."""
        snap = self.snapshot()
        for listener in list(_listeners):
            listener(snap)


class ProgressReporter:
    """Publishes progress: the artifact at most once per :data:`ARTIFACT_INTERVAL`, listeners often.

    Failures to reach the Prefect server are logged once and never stop the run:
    the store, not Prefect, is the source of truth.
    """

    def __init__(self, status: RunStatus, key: str | None = None) -> None:
        self._status = status
        self._key = key
        self._artifact: UUID | None = None
        self._artifact_failed = False

    async def run(self) -> None:
        """Publish until cancelled."""
        last_artifact = -1.0
        last_value: float | None = None
        while True:
            self._status.publish()
            snap = self._status.snapshot()
            now = time.monotonic()
            if snap.expected and now - last_artifact >= ARTIFACT_INTERVAL:
                value = 100.0 * snap.completed / snap.expected
                if value != last_value:
                    await self._publish(value)
                    last_value, last_artifact = value, now
            await anyio.sleep(LISTENER_INTERVAL)

    async def finish(self) -> None:
        """Publish the final value."""
        self._status.publish()
        snap = self._status.snapshot()
        if snap.expected:
            await self._publish(100.0 * snap.completed / snap.expected)

    async def _publish(self, value: float) -> None:
        if self._artifact_failed:
            return
        try:
            # never cancel an HTTP call half-way (it would corrupt the shared client): shield it, bounded
            with anyio.move_on_after(HTTP_TIMEOUT, shield=True):
                await self._send(value)
        except Exception as exc:  # noqa: BLE001 - the run goes on without the artifact
            logger.warning("could not publish the progress artifact: %s", exc)
            self._artifact_failed = True

    async def _send(self, value: float) -> None:
        if self._artifact is None:
            self._artifact = await acreate_progress_artifact(
                progress=value, key=self._key, description="Shots completed (%)"
            )
        else:
            await aupdate_progress_artifact(self._artifact, progress=value)
