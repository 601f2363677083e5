"""One batch of shots: compile consecutive shots, or run compiled ones on the devices when their turn comes.

A batch's shots are handed over one by one through a :class:`BatchFeed`, so a batch may be
larger than the lookahead: its compile stage compiles each shot as it is admitted, and its
execute stage runs each compiled shot as it arrives. These are the bodies of the Prefect
tasks in :mod:`tasks.prefect_tasks`; they import no Prefect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import anyio

from devices import Shot
from tasks.records import CompiledShot, ShotRecord

from ._compiler import ShotCompiler
from ._errors import ShotExecutionError
from ._gate import STORE_DEFER_LIMIT, ExecutionTurn
from ._runner import ShotRunner

__all__ = ["BatchFeed", "compile_batch", "run_batch"]


class BatchFeed[T]:
    """The items of one batch (shots, or compiled shots), handed from one stage to the next in order.

    ``size`` is how many items the batch holds when it is not cut short (end of the
    shots, or a stop): the receiver knows its last item without waiting for :meth:`close`.
    A plain class on purpose: Prefect neither copies nor walks it as a task parameter.
    """

    def __init__(self, first: int, size: int, capacity: int) -> None:
        self.first = first
        self.size = size
        self._send, self._receive = anyio.create_memory_object_stream[T](capacity)

    async def put(self, item: T) -> None:
        """Hand over the next item (waits while ``capacity`` items are pending)."""
        await self._send.send(item)

    def close(self) -> None:
        """No more items: the receiver's :meth:`get` returns None once the pending ones are taken."""
        self._send.close()

    async def get(self) -> T | None:
        """The next item, or None when the feed is closed and empty."""
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            return None

    async def __aiter__(self) -> AsyncIterator[T]:
        while (item := await self.get()) is not None:
            yield item

    def discard(self) -> None:
        """Close both ends (items still pending are dropped)."""
        self._send.close()
        self._receive.close()


async def compile_batch(
    shots: BatchFeed[Shot], compiler: ShotCompiler, on_compiled: Callable[[CompiledShot], Awaitable[None]]
) -> int:
    """Compile the feed's shots in order, handing each to ``on_compiled``; returns how many.

    Raises ``ShotCompilationError`` naming the failing shot and device; the shots
    compiled before it were already handed over.
    """
    count = 0
    async for shot in shots:
        await on_compiled(await compiler.compile(shot))
        count += 1
    return count


async def run_batch(
    shots: BatchFeed[CompiledShot],
    turn: ExecutionTurn,
    runner: ShotRunner,
    on_record: Callable[[ShotRecord], object],
) -> int | None:
    """Run the feed's compiled shots on the devices, in order, once ``turn`` comes.

    Each finished record (completed or failed) is handed to ``on_record``
    (awaited if it returns an awaitable; it stores the shot, shielded). Returns
    the number of completed shots, or None when the batch was discarded before
    starting. Once the sequence is stopping (``turn.closed``) no further shot starts.
    Raises :class:`ShotExecutionError` when a shot fails for good; the next turn is
    released only after the last shot, so shots never overlap.
    """
    if not await turn.wait():
        return None

    async def store(record: ShotRecord) -> None:
        with anyio.CancelScope(shield=True):
            result = on_record(record)
            if hasattr(result, "__await__"):
                await result  # type: ignore[misc]

    done = 0
    try:
        while (compiled := await shots.get()) is not None:
            if turn.closed:
                break
            try:
                record = await runner.run(compiled, on_trigger=partial(turn.trigger, compiled.index))
            except ShotExecutionError as error:
                turn.finish()
                if error.record is not None:
                    await store(error.record)
                raise
            done += 1
            if done < shots.size:
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
            break
    finally:
        turn.finish()
    return done
