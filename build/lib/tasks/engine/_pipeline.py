"""The shot pipeline: compile ahead into a bounded queue, execute strictly in order, store.

Stages (each an owned task of one task group):

- the producer takes shots from a :class:`ShotSource` (an async iterator: a scan's
  shots, or later an optimiser's proposals), one shot at a time and only while fewer
  than ``lookahead`` shots are compiled or compiling but not yet triggered; it groups
  consecutive shots into batches and starts one compile stage per batch, which
  compiles each shot as it arrives;
- the consumer admits each batch in order to an execute stage, which runs each shot
  as soon as it is compiled; the next one begins while the current shot plays, so
  the critical path between shots is an event wake-up, not bookkeeping;
- every finished shot goes to the store callback.

A batch's size is ``shots_per_task``, or with ``"auto"`` what :class:`BatchSizer`
gives from the shot cycles measured so far (start-to-start, at each trigger), asked
when the producer forms the batch: compile and execute stages cover the same shots.
The lookahead counts shots, whatever the batch size, so batching changes neither the
results nor where a compile error stops the run.

The stages are plain coroutines by default (:data:`ENGINE_STAGES`); a run under
Prefect passes the Prefect tasks of :mod:`tasks.prefect_tasks`, one task run per batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import anyio
from anyio import CancelScope

from devices import Shot, ShotCompilationError
from tasks.records import CompiledShot, ShotRecord, ShotStatus

from ._batch_sizer import BatchSizer
from ._batches import BatchFeed, compile_batch, run_batch
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
    __slots__ = ("compiled", "done", "filled", "label", "scope", "shots")

    def __init__(self, first: int, size: int, capacity: int, label: str) -> None:
        self.label = label
        self.shots = BatchFeed[Shot](first, size, capacity)
        self.compiled = BatchFeed[CompiledShot](first, size, capacity)
        self.filled = 0
        self.done = False
        self.scope = CancelScope()

    @property
    def first(self) -> int:
        return self.shots.first


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


def describe_batch(shot: Shot, size: int) -> str:
    """The default name of a batch: ``shot 12``, or ``shots 12-61`` (the last one as planned)."""
    return f"shot {shot.index}" if size == 1 else f"shots {shot.index}-{shot.index + size - 1}"


async def _compile_stage(
    first: int,
    label: str,
    shots: BatchFeed[Shot],
    compiler: ShotCompiler,
    on_compiled: Callable[[CompiledShot], Awaitable[None]],
) -> int:
    return await compile_batch(shots, compiler, on_compiled)


async def _execute_stage(
    first: int,
    label: str,
    shots: BatchFeed[CompiledShot],
    turn: ExecutionTurn,
    runner: ShotRunner,
    on_record: Callable[[ShotRecord], object],
) -> int | None:
    return await run_batch(shots, turn, runner, on_record)


@dataclass(frozen=True)
class Stages:
    """The two per-batch stages, called with keyword arguments.

    ``compile(first=, label=, shots=, compiler=, on_compiled=)`` (``shots`` a :class:`BatchFeed`
    of shots, ``on_compiled`` awaited with each compiled shot) and
    ``execute(first=, label=, shots=, turn=, runner=, on_record=)`` (``shots`` a
    :class:`BatchFeed` of compiled shots); ``label`` names the batch (its task runs): the Prefect tasks of
    :mod:`tasks.prefect_tasks` have these signatures, as do the plain coroutines
    of :data:`ENGINE_STAGES`.
    """

    compile: Callable[..., Awaitable[Any]]
    execute: Callable[..., Awaitable[Any]]


ENGINE_STAGES = Stages(compile=_compile_stage, execute=_execute_stage)
"""Stages that run the batches as plain coroutines (no Prefect)."""


class ShotPipeline:
    """Runs shots through compile -> execute -> store (see the module docstring).

    ``shots_per_task`` is the number of shots per batch (one compile and one execute
    stage each), or ``"auto"``: sized by ``sizer`` (a default :class:`BatchSizer`) from
    the measured shot cycles. :meth:`run` returns a :class:`PipelineOutcome`: on a
    compile error at shot ``n`` (DESIGN.md section 1) the shot that is running
    finishes and is stored, no shot starts after it (shots compiled ahead are
    discarded, pending compile tasks cancelled), and ``compile_error`` is set. With
    ``lookahead`` 1 the completed shots are exactly ``0..n-1``, whatever the batch
    size; a larger lookahead may stop earlier, since shot ``n`` compiles while an
    earlier shot runs. A shot that fails on a device raises ``ShotExecutionError``
    (every other stage is cancelled). Cancelling the caller cancels every stage.
    ``describe(first shot, size)`` names each batch (:func:`describe_batch` by default).
    """

    def __init__(
        self,
        source: ShotSource,
        compiler: ShotCompiler,
        runner: ShotRunner,
        store: Callable[[ShotRecord], Awaitable[None]],
        *,
        lookahead: int,
        shots_per_task: int | Literal["auto"] = 1,
        stages: Stages = ENGINE_STAGES,
        sizer: BatchSizer | None = None,
        clock: Callable[[], float] = time.monotonic,
        describe: Callable[[Shot, int], str] = describe_batch,
    ) -> None:
        if shots_per_task != "auto" and (not isinstance(shots_per_task, int) or shots_per_task < 1):
            raise ValueError(f"shots_per_task must be a positive integer or 'auto', not {shots_per_task!r}")
        self._source = source
        self._stages = stages
        self._compiler = compiler
        self._runner = runner
        self._store = store
        self._lookahead = lookahead
        self._fixed = shots_per_task if isinstance(shots_per_task, int) else None
        self._sizer = sizer if sizer is not None else BatchSizer()
        self._clock = clock
        self._describe = describe
        self._last_trigger: float | None = None
        self._slots: anyio.Semaphore | None = None
        self._gate = ShotGate(on_shot_triggered=self._shot_triggered)
        self._compile_error: ShotCompilationError | None = None
        self._compiling: list[_Batch] = []
        self._stop_producing = CancelScope()
        self.completed = 0
        self.batch_sizes: list[int] = []
        """The size of every batch formed so far, in order."""

    async def run(self) -> PipelineOutcome:
        """Run every shot; see the class docstring for how it ends."""
        self._slots = anyio.Semaphore(self._lookahead)
        send, receive = anyio.create_memory_object_stream[_Batch](self._lookahead + 1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._produce, send, name="compile producer")
            async with receive:
                await self._consume(receive)
            tg.cancel_scope.cancel()
        return PipelineOutcome(self.completed, self._compile_error)

    def _shot_triggered(self, shot: int) -> None:
        assert self._slots is not None
        self._slots.release()  # one more shot may be compiled
        now = self._clock()
        if self._last_trigger is not None:
            self._sizer.record(now - self._last_trigger)
        self._last_trigger = now

    def _next_size(self) -> int:
        size = self._fixed if self._fixed is not None else self._sizer.next_size()
        self.batch_sizes.append(size)
        return size

    async def _produce(self, send: anyio.abc.ObjectSendStream[_Batch]) -> None:
        created = self._compiling
        batch: _Batch | None = None
        eager = False
        shots = aiter(self._source)
        slots = self._slots
        assert slots is not None
        async with send, anyio.create_task_group() as tg:
            try:
                with self._stop_producing:
                    while True:
                        # after a batch of several (fast) shots the next one opens at once, before
                        # a slot is free: its task runs (tens of ms to begin on a busy server)
                        # begin while the previous batch's last shots run
                        early = batch is None and eager
                        if not early:
                            await slots.acquire()  # never more than lookahead shots ahead
                        try:
                            shot = await anext(shots)
                        except StopAsyncIteration:
                            break
                        if batch is None:
                            batch = self._open_batch(shot, tg, created)
                            await send.send(batch)
                        if early:
                            await slots.acquire()
                        await batch.shots.put(shot)
                        batch.filled += 1
                        if batch.filled == batch.shots.size:
                            batch.shots.close()
                            eager = batch.shots.size > 1  # single-shot batches: lookahead covers their start
                            batch = None
            finally:
                if batch is not None:
                    batch.shots.close()

    def _open_batch(self, shot: Shot, tg: anyio.abc.TaskGroup, created: list[_Batch]) -> _Batch:
        """A new batch starting at ``shot``, its compile stage started."""
        size = self._next_size()
        batch = _Batch(shot.index, size, self._lookahead, self._describe(shot, size))
        created[:] = [b for b in created if not b.done]
        created.append(batch)
        tg.start_soon(self._compile, batch, name=f"compile {batch.first}")
        return batch

    async def _compile(self, batch: _Batch) -> None:
        try:
            with batch.scope:
                await self._stages.compile(
                    first=batch.first,
                    label=batch.label,
                    shots=batch.shots,
                    compiler=self._compiler,
                    on_compiled=batch.compiled.put,
                )
        except ShotCompilationError as error:
            if self._compile_error is None or error.shot_index < self._compile_error.shot_index:
                self._compile_error = error
            logger.error("compilation failed: the running shot finishes, no shot starts after it: %s", error)
            self._gate.close()  # shots compiled ahead are discarded
            self._stop_producing.cancel()  # nothing more is scheduled
            for other in self._compiling:  # pending compile tasks are cancelled
                other.scope.cancel()
        finally:
            batch.done = True
            batch.compiled.close()  # after the gate closed: the execute stage stops at the error

    async def _consume(self, receive: anyio.abc.ObjectReceiveStream[_Batch]) -> None:
        async with anyio.create_task_group() as tg:
            async for batch in receive:
                if self._gate.closed or self._compile_error is not None:
                    break
                turn = self._gate.admit()
                tg.start_soon(self._execute, batch, turn, name=f"execute {batch.first}")
                await turn.started.wait()
                # begin the next task runs (Prefect bookkeeping) once this shot plays, not during its set-up
                await turn.triggered.wait()

    async def _execute(self, batch: _Batch, turn: ExecutionTurn) -> None:
        await self._stages.execute(
            first=batch.first,
            label=batch.label,
            shots=batch.compiled,
            turn=turn,
            runner=self._runner,
            on_record=self._on_record,
        )

    async def _on_record(self, record: ShotRecord) -> None:
        await self._store(record)
        if record.status == ShotStatus.COMPLETED:
            self.completed += 1
