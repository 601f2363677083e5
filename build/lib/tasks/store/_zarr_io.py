"""Blocking zarr operations built on zarr's public async API, for the writer's worker thread.

Batches of chunk writes and resizes run concurrently on an event loop of the calling (worker)
thread, so zarr's own internals (its private sync loop) are never used.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

__all__ = ["Write", "ZarrLoop", "consolidate", "resize_all", "write_concurrently"]

Write = tuple[zarr.Array, int | slice, np.ndarray]
"""One chunk write: the array, the index or slice, the value."""


class ZarrLoop:
    """An event loop for one store's zarr I/O, reused by every phase of every batch.

    A fresh loop per phase (``asyncio.run``) started and joined the threads of its default
    executor, where zarr's local store does its file I/O: about 10 ms per phase, three phases
    per batch, and the GIL taken from the shots meanwhile. Used by one thread at a time (the
    writer's worker thread); :meth:`close` stops it and its executor.
    """

    def __init__(self) -> None:
        self._runner: asyncio.Runner | None = None

    def run(self, coroutines: Sequence[Coroutine[Any, Any, Any]]) -> None:
        """Run ``coroutines`` concurrently; return when all are done."""

        async def gather() -> None:
            await asyncio.gather(*coroutines)

        if self._runner is None:
            self._runner = asyncio.Runner()
        self._runner.run(gather())

    def close(self) -> None:
        """Stop the loop and its executor's threads; a later :meth:`run` starts a new loop."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()


def _run(coroutines: Sequence[Coroutine[Any, Any, Any]], loop: ZarrLoop | None) -> None:
    if loop is not None:
        loop.run(coroutines)
        return

    async def gather() -> None:
        await asyncio.gather(*coroutines)

    asyncio.run(gather())


def write_concurrently(writes: Sequence[Write], loop: ZarrLoop | None = None) -> None:
    """Run zarr writes concurrently (on ``loop``, else a fresh one); return when all are durable."""
    if writes:
        _run([array.async_array.setitem(key, value) for array, key, value in writes], loop)


def resize_all(arrays: Iterable[zarr.Array], length: int, loop: ZarrLoop | None = None) -> None:
    """Give every array ``length`` shots, all metadata writes at once (shortest mixed-length
    window for a kill). Chunks outside are kept: they only ever hold pending shots."""
    _run([a.async_array.resize((length, *a.shape[1:]), delete_outside_chunks=False) for a in arrays], loop)


def consolidate(path: Path) -> None:
    """Write the consolidated metadata of every array into the group's ``zarr.json``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "consolidated metadata is not part of the v3 spec"
        zarr.consolidate_metadata(str(path), zarr_format=3)
