"""The compile stage: turns shots into instructions, in threads and worker processes."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio

from devices import DeviceCompiler, Shot
from tasks.records import CompiledShot, raise_first

from ._compile_worker import compile_devices, compile_in_process, init_process, warm_up

__all__ = ["ShotCompiler"]

logger = logging.getLogger(__name__)


def _start_pool(heavy: Mapping[str, DeviceCompiler], workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes, each with its own copy of the ``heavy`` compilers."""
    logger.debug("compile pool: %d worker processes for %s", workers, ", ".join(heavy))
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_process,
        initargs=(heavy,),
    )


async def _wait_future(future: Future[Any]) -> Any:
    try:
        return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        future.cancel()
        raise


PROCESS_AFTER_S = 0.002
"""With ``workers`` unset, the compilers flagged ``compile_in_process`` run in a worker thread
until one shot takes them more CPU time than this; then the process pool starts (see :class:`ShotCompiler`)."""


def _timed_compile(
    compilers: Mapping[str, DeviceCompiler], heavy: tuple[str, ...], light: tuple[str, ...], shot: Shot
) -> tuple[dict[str, Mapping[str, Any]], float]:
    """In the worker thread: the shot's instructions, and the CPU time this thread spent on the ``heavy`` ones.

    CPU time, not wall time: waiting for the GIL while the shots run is not the compiler's cost
    (a 0.3 ms compile measured 2-5 ms of wall time on a busy event loop and moved to processes).
    All in one call: each trip to a worker thread hands the GIL between threads, which on a
    busy loop costs more than a light compile.
    """
    started = time.thread_time()
    out = compile_devices(compilers, heavy, shot)
    cpu = time.thread_time() - started
    out.update(compile_devices(compilers, light, shot))
    return out, cpu


class ShotCompiler:
    """Compiles shots with a sequence's device compilers.

    Compilers flagged ``compile_in_process`` (CPU-heavy, e.g. a pulse sequencer)
    can run in a pool of worker processes, so that compilation uses every core
    instead of one thread under the GIL; the others run in a worker thread.
    With ``workers`` given, the pool serves them from the first shot. Unset (the
    default), they start in a worker thread: a process costs about a second to
    start and stop and a round trip per shot, more than a light compile takes. Once
    one shot takes them longer than :data:`PROCESS_AFTER_S` there, a pool of one
    process per core starts, and takes over once its processes are up. The
    compilers are the same either way, so are the instructions. Use :meth:`open`,
    which owns the process pool.
    """

    def __init__(
        self, compilers: Mapping[str, DeviceCompiler], pool: ProcessPoolExecutor | None, workers: int = 0
    ) -> None:
        self._compilers = dict(compilers)
        self._heavy = {n: c for n, c in compilers.items() if c.compile_in_process}
        self._pool = pool
        self._workers = workers
        self._adaptive = pool is None and bool(self._heavy)
        self._warming: list[Future[Any]] = []
        self._light = tuple(n for n in compilers if n not in self._heavy)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, compilers: Mapping[str, DeviceCompiler], *, workers: int | None = None
    ) -> AsyncIterator[ShotCompiler]:
        """Start the process pool now when ``workers`` is given, or later when needed (see the class).

        The pool is shut down on exit, pending work cancelled.
        """
        heavy = {n: c for n, c in compilers.items() if c.compile_in_process}
        compiler = cls(compilers, _start_pool(heavy, workers) if heavy and workers else None, workers or 0)
        try:
            yield compiler
        finally:
            if compiler._pool is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(partial(compiler._pool.shutdown, wait=True, cancel_futures=True))

    @property
    def uses_processes(self) -> bool:
        """True once the compilers flagged ``compile_in_process`` run in the process pool."""
        return self._pool is not None and all(f.done() for f in self._warming)

    async def warm_up(self) -> None:
        """Start every worker process of a pool started by :meth:`open` now, so the first shots do not pay for it."""
        if self._pool is None:
            return
        pool, workers = self._pool, self._workers
        # submitting spawns the processes, synchronously: off the event loop
        futures = await anyio.to_thread.run_sync(lambda: [pool.submit(warm_up) for _ in range(workers)])
        for f in futures:
            await _wait_future(f)

    async def _start_processes(self) -> None:
        """A heavy compile was slow in the thread: start the pool; its processes come up meanwhile.

        Starting them (pickling the compilers, spawning each interpreter) happens in a worker
        thread: on the event loop it blocked the running shot for 50-100 ms.
        """
        self._adaptive = False  # once, even if several compiles were slow at the same time
        workers = os.cpu_count() or 1

        def spawn() -> tuple[ProcessPoolExecutor, list[Future[Any]]]:
            pool = _start_pool(self._heavy, workers)
            return pool, [pool.submit(warm_up) for _ in range(workers)]

        with anyio.CancelScope(shield=True):  # a pool started is a pool owned: open() shuts it down
            pool, warming = await anyio.to_thread.run_sync(spawn)
        self._workers, self._warming, self._pool = workers, warming, pool
        logger.info(
            "compiling %s in %d worker processes (over %.0f ms of CPU a shot in a thread)",
            ", ".join(self._heavy),
            self._workers,
            PROCESS_AFTER_S * 1e3,
        )

    async def compile(self, shot: Shot) -> CompiledShot:
        """Compile ``shot`` for every device; raises ``ShotCompilationError`` naming shot and device."""
        instructions: dict[str, Mapping[str, Any]] = {}
        if not self.uses_processes:  # every compiler in one worker-thread call
            out, cpu = await anyio.to_thread.run_sync(
                _timed_compile, self._compilers, tuple(self._heavy), self._light, shot
            )
            instructions.update(out)
            if self._adaptive and cpu > PROCESS_AFTER_S:
                await self._start_processes()
        else:

            async def heavy() -> None:
                assert self._pool is not None
                future = self._pool.submit(compile_in_process, tuple(self._heavy), shot)
                instructions.update(await _wait_future(future))

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(heavy)
                    if self._light:
                        instructions.update(
                            await anyio.to_thread.run_sync(compile_devices, self._compilers, self._light, shot)
                        )
            except BaseExceptionGroup as group:
                raise_first(group)
        # cancelled while the in-thread part ran (it is not abandoned), the in-process part was
        # cancelled and the task group exits without raising: raise the cancellation, not a KeyError
        await anyio.lowlevel.checkpoint_if_cancelled()
        ordered = {name: instructions[name] for name in self._compilers}
        return CompiledShot(shot, ordered)
