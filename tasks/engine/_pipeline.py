"""The shot pipeline: compile ahead into a bounded queue, execute strictly in order, store.

Stages (each an owned task of one task group):

- the producer takes shots from a :class:`ShotSource` (an async iterator: a scan's
  shots, or later an optimiser's proposals) and starts a compile stage per batch,
  never more than ``lookahead`` batches ahead of the running one;
- the consumer admits each compiled batch in order to an execute stage; the next
  one begins while the current shot plays, so the critical path between shots is
  an event wake-up, not bookkeeping;
- every finished shot goes to the store callback.

The stages are plain coroutines by default (:data:`ENGINE_STAGES`); a run under
Prefect passes the Prefect tasks of :mod:`tasks.prefect_tasks`, one task run per batch.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from anyio import CancelScope

from devices import Shot, ShotCompilationError
from tasks.records import CompiledShot, ShotRecord, ShotStatus

from ._batches import compile_batch, run_batch
from ._compiler import ShotCompiler
from ._gate import ExecutionTurn, ShotGate
from ._runner import ShotRunner

__all__ = ["ENGINE_STAGES", "PipelineOutcome", "ShotPipeline", "ShotSource", "Stages", "shots_from"]

logger = logging.getLogger(__name__)


@dataclass
class PipelineOutcome:
    """How the pipeline ended when it did not raise."""

    completed: int
    compile_error: ShotCompilationError | None = None


class _Batch:
    __slots__ = ("compiled", "error", "ready", "scope", "shots")

    def __init__(self, shots: list[Shot]) -> None:
        self.shots = shots
        self.compiled: list[CompiledShot] | None = None
        self.error: ShotCompilationError | None = None
        self.ready = anyio.Event()
        self.scope = CancelScope()

    @property
    def first(self) -> int:
        return self.shots[0].index


class ShotSource(Protocol):
    """Where the pipeline takes its shots from: an async iterator of :class:`devices.Shot`.

    The pipeline asks for the next shot only when a compile slot is free, so a
    source may decide each shot from the data of those already run.
    """

    def __aiter__(self) -> AsyncIterator[Shot]:
        """The shots, in order."""
        ...


class _IterableSource:
    def __init__(self, shots: Iterable[Shot]) -> None:
        self._shots = shots

    async def __aiter__(self) -> AsyncIterator[Shot]:
        for shot in self._shots:
            yield shot
            await anyio.lowlevel.checkpoint()


def shots_from(shots: Iterable[Shot]) -> ShotSource:
    """A :class:`ShotSource` of an iterable of shots (walked lazily)."""
    return _IterableSource(shots)


async def _batched(source: ShotSource, size: int) -> AsyncIterator[list[Shot]]:
    batch: list[Shot] = []
    async for shot in source:
        batch.append(shot)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _compile_stage(
    first: int, shots: list[Shot], compiler: ShotCompiler, on_compiled: Callable[[list[CompiledShot]], None]
) -> None:
    on_compiled(await compile_batch(shots, compiler))


async def _execute_stage(
    first: int,
    shots: list[CompiledShot],
    turn: ExecutionTurn,
    runner: ShotRunner,
    on_record: Callable[[ShotRecord], object],
) -> int | None:
    return await run_batch(shots, turn, runner, on_record)


@dataclass(frozen=True)
class Stages:
    """The two per-batch stages, called with keyword arguments.

    ``compile(first=, shots=, compiler=, on_compiled=)`` and
    ``execute(first=, shots=, turn=, runner=, on_record=)``: the Prefect tasks of
    :mod:`tasks.prefect_tasks` have these signatures, as do the plain coroutines
    of :data:`ENGINE_STAGES`.
    """

    compile: Callable[..., Awaitable[Any]]
    execute: Callable[..., Awaitable[Any]]


ENGINE_STAGES = Stages(compile=_compile_stage, execute=_execute_stage)
"""Stages that run the batches as plain coroutines (no Prefect)."""


class ShotPipeline:
    """Runs shots through compile -> execute -> store (see the module docstring).

    :meth:`run` returns a :class:`PipelineOutcome`: on a compile error at shot
    ``n`` (DESIGN.md section 1) the shot that is running finishes and is stored,
    no shot starts after it (shots compiled ahead are discarded, pending compile
    tasks cancelled), and ``compile_error`` is set. With ``lookahead`` 1 the
    completed shots are exactly ``0..n-1``; a larger lookahead may stop earlier,
    since shot ``n`` compiles while an earlier shot runs. A shot that
    fails on a device raises ``ShotExecutionError`` (every other stage is
    cancelled). Cancelling the caller cancels every stage.
    """

    def __init__(
        self,
        source: ShotSource,
        compiler: ShotCompiler,
        runner: ShotRunner,
        store: Callable[[ShotRecord], Awaitable[None]],
        *,
        lookahead: int,
        shots_per_task: int = 1,
        stages: Stages = ENGINE_STAGES,
    ) -> None:
        self._source = source
        self._stages = stages
        self._compiler = compiler
        self._runner = runner
        self._store = store
        self._lookahead = lookahead
        self._batch = shots_per_task
        self._gate = ShotGate()
        self._compile_error: ShotCompilationError | None = None
        self._compiling: list[_Batch] = []
        self._stop_producing = CancelScope()
        self.completed = 0

    async def run(self) -> PipelineOutcome:
        """Run every shot; see the class docstring for how it ends."""
        slots = anyio.Semaphore(self._lookahead)
        send, receive = anyio.create_memory_object_stream[_Batch](self._lookahead + 1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._produce, send, slots, name="compile producer")
            async with receive:
                await self._consume(receive, slots)
            tg.cancel_scope.cancel()
        return PipelineOutcome(self.completed, self._compile_error)

    async def _produce(self, send: anyio.abc.ObjectSendStream[_Batch], slots: anyio.Semaphore) -> None:
        created = self._compiling
        try:
            async with send, anyio.create_task_group() as tg:
                with self._stop_producing:
                    async for shots in _batched(self._source, self._batch):
                        await slots.acquire()
                        batch = _Batch(shots)
                        created.append(batch)
                        tg.start_soon(self._compile, batch, name=f"compile {batch.first}")
                        await send.send(batch)
                        created[:] = [b for b in created if not b.ready.is_set()]
        finally:
            for batch in created:
                batch.ready.set()

    async def _compile(self, batch: _Batch) -> None:
        try:
            with batch.scope:

                def keep(compiled: list[CompiledShot]) -> None:
                    batch.compiled = compiled

                await self._stages.compile(
                    first=batch.first, shots=batch.shots, compiler=self._compiler, on_compiled=keep
                )
        except ShotCompilationError as error:
            batch.error = error
            if self._compile_error is None or error.shot_index < self._compile_error.shot_index:
                self._compile_error = error
            logger.error("compilation failed: the running shot finishes, no shot starts after it: %s", error)
            self._gate.close()  # shots compiled ahead are discarded
            self._stop_producing.cancel()  # nothing more is scheduled
            for other in self._compiling:  # pending compile tasks are cancelled
                other.scope.cancel()
        finally:
            batch.ready.set()

    async def _consume(self, receive: anyio.abc.ObjectReceiveStream[_Batch], slots: anyio.Semaphore) -> None:
        async with anyio.create_task_group() as tg:
            async for batch in receive:
                await batch.ready.wait()
                if batch.compiled is None or self._gate.closed or self._compile_error is not None:
                    break
                turn = self._gate.admit()
                tg.start_soon(self._execute, batch.compiled, turn, name=f"execute {batch.first}")
                await turn.started.wait()
                # begin the next task runs (Prefect bookkeeping) once this shot plays, not during its set-up
                await turn.triggered.wait()
                slots.release()

    async def _execute(self, compiled: list[CompiledShot], turn: ExecutionTurn) -> None:
        await self._stages.execute(
            first=compiled[0].index, shots=compiled, turn=turn, runner=self._runner, on_record=self._on_record
        )

    async def _on_record(self, record: ShotRecord) -> None:
        await self._store(record)
        if record.status == ShotStatus.COMPLETED:
            self.completed += 1
