"""One batch of shots: compile consecutive shots, or run compiled ones on the devices when their turn comes.

These are the bodies of the Prefect tasks in :mod:`tasks.prefect_tasks`; they import no Prefect.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from devices import Shot
from tasks.records import CompiledShot, ShotRecord

from ._compiler import ShotCompiler
from ._errors import ShotExecutionError
from ._gate import STORE_DEFER_LIMIT, ExecutionTurn
from ._runner import ShotRunner

__all__ = ["compile_batch", "run_batch"]


async def compile_batch(shots: list[Shot], compiler: ShotCompiler) -> list[CompiledShot]:
    """Compile ``shots`` in order; raises ``ShotCompilationError`` naming the failing shot and device."""
    return [await compiler.compile(shot) for shot in shots]


async def run_batch(
    shots: list[CompiledShot],
    turn: ExecutionTurn,
    runner: ShotRunner,
    on_record: Callable[[ShotRecord], object],
) -> int | None:
    """Run compiled ``shots`` on the devices, in order, once ``turn`` comes.

    Each finished record (completed or failed) is handed to ``on_record``
    (awaited if it returns an awaitable; it stores the shot, shielded). Returns
    the number of completed shots, or None when the batch was discarded before
    starting. Raises :class:`ShotExecutionError` when a shot fails for good; the
    next turn is released only after the last shot, so shots never overlap.
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
