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
        self._rate = _ShotRate()

    async def run(self) -> None:
        """Publish until cancelled."""
        last_artifact = -1.0
        last_completed: int | None = None
        while True:
            self._status.publish()
            snap = self._status.snapshot()
            now = time.monotonic()
            self._rate.observe(snap.completed, now)
            if snap.expected and now - last_artifact >= ARTIFACT_INTERVAL and snap.completed != last_completed:
                await self._publish(snap)
                last_completed, last_artifact = snap.completed, now
            await anyio.sleep(LISTENER_INTERVAL)

    async def finish(self) -> None:
        """Publish the final value."""
        self._status.publish()
        snap = self._status.snapshot()
        self._rate.observe(snap.completed, time.monotonic())
        if snap.expected:
            await self._publish(snap)

    async def _publish(self, snap: Progress) -> None:
        if self._artifact_failed or not snap.expected:
            return
        value = 100.0 * snap.completed / snap.expected
        description = progress_text(snap.completed, snap.expected, self._rate.per_second())
        try:
            # never cancel an HTTP call half-way (it would corrupt the shared client): shield it, bounded
            with anyio.move_on_after(HTTP_TIMEOUT, shield=True):
                await self._send(value, description)
        except Exception as exc:  # noqa: BLE001 - the run goes on without the artifact
            logger.warning("could not publish the progress artifact: %s", exc)
            self._artifact_failed = True

    async def _send(self, value: float, description: str) -> None:
        # one call per update: the description (what the UI's card shows) travels with the value
        if self._artifact is None:
            self._artifact = await acreate_progress_artifact(progress=value, key=self._key, description=description)
        else:
            await aupdate_progress_artifact(self._artifact, progress=value, description=description)


class _ShotRate:
    """Shots per second of this run, from the first count seen (a resumed run's earlier shots do not count)."""

    def __init__(self) -> None:
        self._first: tuple[int, float] | None = None
        self._last: tuple[int, float] | None = None

    def observe(self, completed: int, now: float) -> None:
        if self._first is None or completed <= self._first[0]:
            self._first = (completed, now)  # the clock starts when the count last stood still
        self._last = (completed, now)

    def per_second(self) -> float | None:
        if self._first is None or self._last is None:
            return None
        shots, seconds = self._last[0] - self._first[0], self._last[1] - self._first[1]
        return shots / seconds if shots > 0 and seconds > 0 else None


def progress_text(completed: int, expected: int, rate: float | None) -> str:
    """What the progress card says without a click: ``shot 12 of 41 · 2.5 shots/s · ETA 0:00:12``
    (the rate and ETA once a shot of this run has been timed; no ETA when all shots are done)."""
    parts = [f"shot {completed} of {expected}"]
    if rate is not None:
        parts.append(f"{rate:.3g} shots/s")
        if completed < expected:
            eta = round((expected - completed) / rate)
            parts.append(f"ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}")
    return " · ".join(parts)
