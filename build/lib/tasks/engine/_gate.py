"""Ordering of execution batches: each may start once the one admitted before it has finished."""

from __future__ import annotations

from collections.abc import Callable

import anyio

__all__ = ["STORE_DEFER_LIMIT", "ExecutionTurn", "ShotGate"]

STORE_DEFER_LIMIT = 0.05
"""Longest time (s) a finished shot waits for the next shot's trigger before it goes to the store."""


class ExecutionTurn:
    """One execution task's place in line: it may start once the previous turn has finished."""

    def __init__(self, gate: ShotGate, previous: anyio.Event) -> None:
        self._gate = gate
        self._previous = previous
        self._next: ExecutionTurn | None = None
        self.started = anyio.Event()
        self.triggered = anyio.Event()
        """Set when this turn's first shot is triggered (its devices all ready), or when the turn ends."""
        self.finished = anyio.Event()

    async def wait(self) -> bool:
        """Wait for the previous turn to finish; ``False`` if the gate closed meanwhile (discarded)."""
        await self._previous.wait()
        if self.closed:
            self.finish()
            return False
        self.started.set()
        return True

    @property
    def closed(self) -> bool:
        """Whether the sequence is stopping (no new shot may start)."""
        return self._gate.closed

    def trigger(self, shot: int | None = None) -> None:
        """Record that a shot of this turn was triggered (idempotent; a retried shot counts once).

        The gate's ``on_shot_triggered`` hears each shot index once, the first time it triggers.
        """
        self.triggered.set()
        if shot is not None:
            self._gate.shot_triggered(shot)

    def finish(self) -> None:
        """Let the next turn start (idempotent)."""
        self.started.set()
        self.triggered.set()
        self.finished.set()

    def link(self, following: ExecutionTurn) -> None:
        """Record ``following`` as the turn admitted right after this one."""
        self._next = following

    async def wait_next_triggered(self) -> None:
        """Wait until the turn admitted after this one has triggered its shot or ended; no wait if none.

        Work done after this (Prefect's end-of-task bookkeeping, waking the store
        writer) then overlaps the next shot's play instead of delaying its set-up.
        """
        if self._next is not None:
            await self._next.triggered.wait()


class ShotGate:
    """Orders execution tasks: each waits for the one admitted before it.

    Admitting a turn ahead lets its Prefect task run begin (bookkeeping, HTTP)
    while the previous shot still plays, so the gap between shots is only the
    wake-up of an event. :meth:`close` discards every turn that has not started.
    ``on_shot_triggered`` is called with each shot's index when it first triggers.
    """

    def __init__(self, on_shot_triggered: Callable[[int], None] | None = None) -> None:
        self._last: ExecutionTurn | None = None
        self._on_shot_triggered = on_shot_triggered
        self._last_shot: int | None = None
        self.closed = False

    def shot_triggered(self, shot: int) -> None:
        """Hear that shot ``shot`` triggered: passed on to ``on_shot_triggered`` once per shot."""
        if self._last_shot is not None and shot <= self._last_shot:
            return
        self._last_shot = shot
        if self._on_shot_triggered is not None:
            self._on_shot_triggered(shot)

    def admit(self) -> ExecutionTurn:
        """The next turn in line."""
        previous = self._last
        if previous is None:
            ready = anyio.Event()
            ready.set()
            turn = ExecutionTurn(self, ready)
        else:
            turn = ExecutionTurn(self, previous.finished)
            previous.link(turn)
        self._last = turn
        return turn

    def close(self) -> None:
        """No turn that has not started yet will run."""
        self.closed = True
