"""Progress of a running sequence: a Prefect progress artifact and local listeners (the CLI bar)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import UUID

import anyio
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact

__all__ = ["Progress", "ProgressReporter", "progress_listener"]

logger = logging.getLogger(__name__)

ARTIFACT_INTERVAL = 1.0
"""Seconds between two updates of the Prefect progress artifact (each one is an HTTP call)."""
HTTP_TIMEOUT = 10.0
"""Seconds one artifact update may take; it is never cancelled half-way."""
LISTENER_INTERVAL = 0.1
"""Seconds between two calls of the local listeners."""


@dataclass(frozen=True)
class Progress:
    """A snapshot of a run's progress."""

    completed: int
    expected: int | None
    elapsed: float


_listeners: list[Callable[[Progress], None]] = []


@contextmanager
def progress_listener(listener: Callable[[Progress], None]) -> Iterator[None]:
    """Call ``listener`` with a :class:`Progress` about ten times a second while a sequence runs here."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


class ProgressReporter:
    """Publishes progress: the artifact at most once per :data:`ARTIFACT_INTERVAL`, listeners often.

    Failures to reach the Prefect server are logged once and never stop the run:
    the store, not Prefect, is the source of truth.
    """

    def __init__(self, expected: int | None, completed: Callable[[], int], key: str | None = None) -> None:
        self._expected = expected
        self._completed = completed
        self._key = key
        self._start = time.monotonic()
        self._artifact: UUID | None = None
        self._artifact_failed = False

    def snapshot(self) -> Progress:
        """The current progress."""
        return Progress(self._completed(), self._expected, time.monotonic() - self._start)

    async def run(self) -> None:
        """Publish until cancelled."""
        last_artifact = -1.0
        last_value: float | None = None
        while True:
            snap = self.snapshot()
            for listener in list(_listeners):
                listener(snap)
            now = time.monotonic()
            if self._expected and now - last_artifact >= ARTIFACT_INTERVAL:
                value = 100.0 * snap.completed / self._expected
                if value != last_value:
                    await self._publish(value)
                    last_value, last_artifact = value, now
            await anyio.sleep(LISTENER_INTERVAL)

    async def finish(self) -> None:
        """Publish the final value."""
        snap = self.snapshot()
        for listener in list(_listeners):
            listener(snap)
        if self._expected:
            await self._publish(100.0 * snap.completed / self._expected)

    async def _publish(self, value: float) -> None:
        if self._artifact_failed:
            return
        try:
            # never cancel an HTTP call half-way (it would corrupt the shared client): shield it, bounded
            with anyio.move_on_after(HTTP_TIMEOUT, shield=True):
                await self._send(value)
        except Exception as exc:  # the run goes on without the artifact
            logger.warning("could not publish the progress artifact: %s", exc)
            self._artifact_failed = True

    async def _send(self, value: float) -> None:
        if self._artifact is None:
            self._artifact = await acreate_progress_artifact(
                progress=value, key=self._key, description="Shots completed (%)"
            )
        else:
            await aupdate_progress_artifact(self._artifact, progress=value)
