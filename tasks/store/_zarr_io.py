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

__all__ = ["Write", "consolidate", "resize_all", "write_concurrently"]

Write = tuple[zarr.Array, int | slice, np.ndarray]
"""One chunk write: the array, the index or slice, the value."""


def _run(coroutines: Sequence[Coroutine[Any, Any, Any]]) -> None:
    """Run ``coroutines`` concurrently on a fresh event loop of this thread; return when all are done."""

    async def gather() -> None:
        await asyncio.gather(*coroutines)

    asyncio.run(gather())


def write_concurrently(writes: Sequence[Write]) -> None:
    """Run zarr writes concurrently; return when all are durable (one phase of a batch)."""
    if writes:
        _run([array.async_array.setitem(key, value) for array, key, value in writes])


def resize_all(arrays: Iterable[zarr.Array], length: int) -> None:
    """Give every array ``length`` shots, all metadata writes at once (shortest mixed-length
    window for a kill). Chunks outside are kept: they only ever hold pending shots."""
    _run([a.async_array.resize((length, *a.shape[1:]), delete_outside_chunks=False) for a in arrays])


def consolidate(path: Path) -> None:
    """Write the consolidated metadata of every array into the group's ``zarr.json``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "consolidated metadata is not part of the v3 spec"
        zarr.consolidate_metadata(str(path), zarr_format=3)
