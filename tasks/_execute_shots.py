"""The execution task: one Prefect task run per shot (or batch of shots), strictly in order."""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.states import Cancelled, State

from ._compiled import CompiledShot
from ._errors import ShotExecutionError
from ._records import ShotRecord
from ._run_context import forget_task_run_assets
from ._shot_runner import ShotRunner

__all__ = ["ExecutionTurn", "ShotGate", "execute_shots"]

logger = logging.getLogger(__name__)

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

    def trigger(self) -> None:
        """Record that a shot of this turn was triggered (idempotent)."""
        self.triggered.set()

    def finish(self) -> None:
        """Let the next turn start (idempotent)."""
        self.started.set()
        self.triggered.set()
        self.finished.set()

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
    """

    def __init__(self) -> None:
        self._last: ExecutionTurn | None = None
        self.closed = False

    def admit(self) -> ExecutionTurn:
        """The next turn in line."""
        previous = self._last
        if previous is None:
            ready = anyio.Event()
            ready.set()
            turn = ExecutionTurn(self, ready)
        else:
            turn = ExecutionTurn(self, previous.finished)
            previous._next = turn
        self._last = turn
        return turn

    def close(self) -> None:
        """No turn that has not started yet will run."""
        self.closed = True


@task(name="execute-shots", task_run_name="execute-shot-{first}", cache_policy=NO_CACHE, persist_result=False)
async def execute_shots(
    first: int,
    shots: list[CompiledShot],
    turn: ExecutionTurn,
    runner: ShotRunner,
    on_record: Callable[[ShotRecord], object],
) -> int | State:
    """Prefect task: run a batch of compiled shots on the devices, in order, when its turn comes.

    Each finished record (completed or failed) is handed to ``on_record``
    (awaited if it returns an awaitable; it stores the shot). Returns the number
    of completed shots, or a Cancelled state when the batch was discarded
    before starting. Raises ``ShotExecutionError`` when a shot fails for good;
    the next turn is released only after the last shot, so shots never overlap.
    """
    forget_task_run_assets()
    if not await turn.wait():
        return Cancelled(message=f"shots from {first} discarded: the sequence is stopping")

    async def store(record: ShotRecord) -> None:
        with anyio.CancelScope(shield=True):
            result = on_record(record)
            if hasattr(result, "__await__"):
                await result  # type: ignore[misc]

    done = 0
    try:
        for position, compiled in enumerate(shots):
            if position and turn.closed:
                break
            try:
                record = await runner.run(compiled, on_trigger=turn.trigger)
            except ShotExecutionError as error:
                turn.finish()
                if error.record is not None:
                    await store(error.record)
                raise
            done += 1
            if position < len(shots) - 1:
                await store(record)
                continue
            turn.finish()  # the next turn's shot starts now
            try:
                # storing this shot and ending this task run overlap the next shot's play,
                # unless the next shot's set-up is long: a finished shot is durable promptly
                with anyio.move_on_after(STORE_DEFER_LIMIT):
                    await turn.wait_next_triggered()
            finally:
                await store(record)
    finally:
        turn.finish()
    return done
