"""The compile stage: turns shots into instructions, in threads and worker processes."""

from __future__ import annotations

import logging
import multiprocessing
import os
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


async def _wait_future(future: Future[Any]) -> Any:
    try:
        return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        future.cancel()
        raise


class ShotCompiler:
    """Compiles shots with a sequence's device compilers.

    Compilers flagged ``compile_in_process`` (CPU-heavy, e.g. a pulse
    sequencer) run in a pool of worker processes so that compilation uses every
    core instead of one thread under the GIL; the others run in a worker
    thread. Use :meth:`open`, which owns the process pool.
    """

    def __init__(
        self, compilers: Mapping[str, DeviceCompiler], pool: ProcessPoolExecutor | None, workers: int = 0
    ) -> None:
        self._compilers = dict(compilers)
        self._pool = pool
        self._workers = workers
        self._in_process = tuple(n for n, c in compilers.items() if c.compile_in_process and pool)
        self._in_thread = tuple(n for n in compilers if n not in self._in_process)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, compilers: Mapping[str, DeviceCompiler], *, workers: int | None = None
    ) -> AsyncIterator[ShotCompiler]:
        """Start the process pool if a compiler needs it (``workers`` defaults to the core count).

        The pool is shut down on exit, pending work cancelled.
        """
        heavy = {n: c for n, c in compilers.items() if c.compile_in_process}
        if not heavy:
            yield cls(compilers, None)
            return
        workers = workers or os.cpu_count() or 1
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_process,
            initargs=(heavy,),
        )
        try:
            logger.debug("compile pool: %d worker processes for %s", workers, ", ".join(heavy))
            yield cls(compilers, pool, workers)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(partial(pool.shutdown, wait=True, cancel_futures=True))

    async def warm_up(self) -> None:
        """Start every worker process now, so the first shots do not pay for it."""
        if self._pool is None:
            return
        futures = [self._pool.submit(warm_up) for _ in range(self._workers)]
        for f in futures:
            await _wait_future(f)

    async def compile(self, shot: Shot) -> CompiledShot:
        """Compile ``shot`` for every device; raises ``ShotCompilationError`` naming shot and device."""
        instructions: dict[str, Mapping[str, Any]] = {}

        async def in_process() -> None:
            assert self._pool is not None
            future = self._pool.submit(compile_in_process, self._in_process, shot)
            instructions.update(await _wait_future(future))

        try:
            async with anyio.create_task_group() as tg:
                if self._in_process:
                    tg.start_soon(in_process)
                if self._in_thread:
                    instructions.update(
                        await anyio.to_thread.run_sync(compile_devices, self._compilers, self._in_thread, shot)
                    )
        except BaseExceptionGroup as group:
            raise_first(group)
        # cancelled while the in-thread part ran (it is not abandoned), the in-process part was
        # cancelled and the task group exits without raising: raise the cancellation, not a KeyError
        await anyio.lowlevel.checkpoint_if_cancelled()
        ordered = {name: instructions[name] for name in self._compilers}
        return CompiledShot(shot, ordered)
