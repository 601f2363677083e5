"""Compaction: a finished store's per-shot-chunked data arrays rewritten into shards, and back.

The writer gives every data label one chunk file per shot (``<label>/c/<shot>/0/0``); 100,000
shots of 3 cameras make 300,000 files. :func:`compact_store` rewrites each such array with the
zarr v3 sharding codec: shards of many shots (about :data:`SHARD_BYTES` of raw data each) whose
inner chunks are the same per-shot chunks with the same codecs, so an array is a few files and
reads the same values, bit for bit. :func:`expand_arrays` does the reverse before a resume: the
writer writes one shot at a time, which a shard would turn into concurrent read-modify-writes.

**The protocol** (per array; a crash at any step leaves every completed shot readable):

1. Under the store's writer lock (a running writer refuses compaction, and a resume waits for
   it), the consolidated metadata is dropped from the group's ``zarr.json`` (one atomic file
   replace), so readers read each array's own ``zarr.json`` from then on.
2. The new array is written *alongside*, in the hidden folder ``<label>/.rewrite/`` (zarr never
   takes a sub-folder of an array for a group member): its ``zarr.json`` and its chunk files,
   under the other chunk key encoding (shards: ``v2`` keys ``<n>.0.0`` at the array's top;
   per-shot chunks: the default ``c/<n>/0/0``), so that old and new files never share a name.
3. Every block of shots is read back from the new array and compared, as bytes, with the old one.
4. The new chunk files are moved into ``<label>/`` (``os.replace``, each atomic), still
   invisible: the old ``zarr.json`` names only old keys.
5. **The switch**: ``.rewrite/zarr.json`` replaces ``<label>/zarr.json`` with ``os.replace``, an
   atomic rename of one file on POSIX (``rename(2)``) and on Windows (``MoveFileExW`` with
   ``MOVEFILE_REPLACE_EXISTING``, same volume). Replacing a *folder* is not atomic: POSIX
   cannot rename onto a non-empty folder and Windows cannot rename onto an existing one, so
   there would be a moment without the array. Readers see the old metadata or the new one,
   and either names files that exist.
6. The old chunk files are deleted, then ``.rewrite/``.
7. Once every array is done, the metadata is consolidated again (one atomic write).

A later run of either function finishes the job: it first deletes what the current
``zarr.json`` does not name (a ``.rewrite/`` folder, chunk files of the other encoding: the new
files of a rewrite killed before its switch, or the old files of one killed after it), then
rewrites the arrays still in the other layout. Arrays in a layout it did not make are left alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr
from zarr.storage import LocalStore

from ._errors import StoreBusyError, StoreCompactionError, StoreError
from ._layout import PARTIAL_SUFFIX, SHOT, read_root_attrs
from ._lock import acquire_writer_lock
from ._states import in_progress
from ._zarr_io import consolidate

__all__ = ["CompactionReport", "CompactionStep", "compact_store", "count_files", "expand_arrays"]

logger = logging.getLogger(__name__)

SHARD_BYTES = 64 * 2**20
"""Raw (uncompressed) bytes of shot data per shard: 128 images of 512x512 uint16. Compaction
holds two shards' worth in memory (the block read and its read-back)."""
SIDE = ".rewrite"
"""The hidden folder, inside an array's folder, where its new layout is written."""
SHARDED_KEYS = {"name": "v2", "configuration": {"separator": "."}}
PER_SHOT_KEYS = {"name": "default", "configuration": {"separator": "/"}}
_SHARD_FILE = re.compile(r"^\d+(\.\d+)*$")
_PER_SHOT_FOLDER = "c"

Layout = Literal["sharded", "per_shot"]


@dataclass(frozen=True)
class CompactionStep:
    """Progress of a rewrite: ``array`` reached ``phase`` (``copied``: ``done`` of ``total`` shots
    written and verified; ``switched``: the array reads its new layout; ``deleted``: ``done`` of
    ``total`` shots' old files deleted)."""

    array: str
    phase: Literal["copied", "switched", "deleted"]
    done: int
    total: int


@dataclass(frozen=True)
class CompactionReport:
    """What :func:`compact_store` did: the ``arrays`` it rewrote (empty: already compact), the
    store's file count before and after, and the seconds it took."""

    path: Path
    arrays: tuple[str, ...]
    files_before: int
    files_after: int
    seconds: float

    def describe(self) -> str:
        """One line: ``compacted 2 arrays of STORE: 130 -> 4 files in 0.4 s`` (or already compact)."""
        if not self.arrays:
            return f"store {self.path} is already compact ({self.files_after} files)"
        return (
            f"compacted {len(self.arrays)} array(s) of {self.path}: "
            f"{self.files_before} -> {self.files_after} files in {self.seconds:.2f} s"
        )


Progress = Callable[[CompactionStep], None]


def count_files(path: str | Path) -> int:
    """The number of files under ``path`` (the store's folders not counted)."""
    return sum(len(files) for _, _, files in os.walk(path))


def compact_store(path: str | Path, *, progress: Progress | None = None) -> CompactionReport:
    """Rewrite the store's per-shot-chunked data arrays into shards (see the module's protocol).

    Blocks (call it from a worker thread in async code). Idempotent: a compact store is left as
    it is, and a compaction killed at any point is finished. ``progress`` is called, in this
    thread, at each :class:`CompactionStep`.

    Raises StoreError if ``path`` is not a shotflow store, StoreBusyError if a writer (a run, a
    resume, another compaction) holds it, StoreCompactionError if the run is still in progress
    (``crashed``: resume it instead), a rewritten array did not read back equal (the store is
    left in its old layout for that array), or the disk or a damaged chunk stopped it.
    """
    path = Path(path)
    started = time.perf_counter()
    read_root_attrs(path)  # raises StoreError for what is not a store
    before = count_files(path)  # counted without the lock's holder file
    try:
        lock = acquire_writer_lock(path)
    except StoreBusyError as exc:
        raise StoreBusyError(f"cannot compact {path} while it is being written: {exc}") from None
    try:
        state = read_root_attrs(path).get("state")
        if in_progress(state):
            raise StoreCompactionError(
                f"cannot compact {path}: its run is still in progress (state {state!r}, no writer: crashed); "
                f"`shotflow resume {path}` finishes it (and compacts it)"
            )
        try:
            done = _rewrite(path, "sharded", progress)
        except (OSError, ValueError, RuntimeError, SystemError) as exc:  # the disk, or a damaged chunk
            raise StoreCompactionError(
                f"compacting {path} failed ({type(exc).__name__}: {exc}); every shot is still readable, "
                "and compacting again finishes the job"
            ) from exc
    finally:
        lock.release()
    report = CompactionReport(path, done, before, count_files(path), time.perf_counter() - started)
    logger.debug(report.describe())
    return report


def expand_arrays(path: Path, *, progress: Progress | None = None) -> tuple[str, ...]:
    """Rewrite the store's sharded data arrays back into one chunk per shot; return their names.

    For the writer, which resumes the store: the caller holds the writer lock. Finishes an
    interrupted compaction's clean-up as well. Raises StoreCompactionError if an array did not
    read back equal.
    """
    return _rewrite(Path(path), "per_shot", progress)


# --- the rewrite -------------------------------------------------------------------------


def _rewrite(path: Path, target: Layout, progress: Progress | None) -> tuple[str, ...]:
    arrays = dict(_data_arrays(path))
    for folder, meta in arrays.values():
        _remove_garbage(folder, meta)
    todo = [name for name, (_, meta) in arrays.items() if _layout(meta) not in (target, None)]
    if todo:
        _drop_consolidated(path)
    for name in todo:
        folder, meta = arrays[name]
        _rewrite_array(name, folder, meta, target, progress or (lambda step: None))
    root = json.loads((path / "zarr.json").read_text())
    if "consolidated_metadata" not in root and not in_progress(root.get("attributes", {}).get("state")):
        consolidate(path)  # also after a rewrite killed between its last switch and this
    return tuple(todo)


def _data_arrays(path: Path) -> Iterator[tuple[str, tuple[Path, dict[str, Any]]]]:
    """(name, (folder, metadata)) of every data array over ``shot`` with per-shot values."""
    for folder in sorted(path.iterdir()):
        meta_file = folder / "zarr.json"
        if not meta_file.is_file():
            continue
        if folder.is_symlink():
            raise StoreError(f"store {path}: {folder.name} is a symbolic link; a store's arrays are its own folders")
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"store {path}: the metadata of {folder.name} cannot be read: {exc}") from exc
        dims = meta.get("dimension_names") or [None]
        if meta.get("node_type") == "array" and dims[0] == SHOT and len(meta.get("shape", ())) >= 2:
            yield folder.name, (folder, meta)


def _layout(meta: dict[str, Any]) -> Layout | None:
    """The layout this module makes that ``meta`` describes; None for any other."""
    chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
    codecs = meta.get("codecs", [])
    keys = meta.get("chunk_key_encoding")
    if codecs and codecs[0]["name"] == "sharding_indexed":
        inner = codecs[0]["configuration"]["chunk_shape"]
        if len(codecs) == 1 and keys == SHARDED_KEYS and inner[0] == 1 and inner[1:] == chunks[1:]:
            return "sharded"
        return None
    if chunks[0] == 1 and chunks[1:] == meta["shape"][1:] and keys == PER_SHOT_KEYS:
        return "per_shot"
    return None


def _sharded(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` (per-shot chunks) with shards of about SHARD_BYTES, the same inner chunks and codecs."""
    chunk = meta["chunk_grid"]["configuration"]["chunk_shape"]
    raw = math.prod(chunk) * _itemsize(meta["data_type"])
    shots = max(1, min(meta["shape"][0], SHARD_BYTES // max(raw, 1)))
    sharding = {
        "name": "sharding_indexed",
        "configuration": {
            "chunk_shape": chunk,
            "codecs": meta["codecs"],
            "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
            "index_location": "end",
        },
    }
    return meta | {
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [shots, *chunk[1:]]}},
        "codecs": [sharding],
        "chunk_key_encoding": SHARDED_KEYS,
    }


def _itemsize(data_type: Any) -> int:
    """Bytes per value of a zarr v3 ``data_type`` (1 for one numpy does not know)."""
    try:
        return np.dtype(data_type).itemsize
    except TypeError:
        return 1


def _per_shot(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` (sharded) as the writer makes it: the inner chunks and codecs, default keys."""
    inner = meta["codecs"][0]["configuration"]
    return meta | {
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": inner["chunk_shape"]}},
        "codecs": inner["codecs"],
        "chunk_key_encoding": PER_SHOT_KEYS,
    }


def _is_garbage(entry: Path, layout: Layout) -> bool:
    """Whether ``entry`` (in an array folder of ``layout``) is left from an interrupted rewrite:
    ``.rewrite/``, a temporary file, or chunk files of the other layout."""
    if entry.name == SIDE or entry.name.endswith(PARTIAL_SUFFIX):
        return True
    if layout == "sharded":
        return entry.name == _PER_SHOT_FOLDER
    return bool(_SHARD_FILE.match(entry.name))


def _remove_garbage(folder: Path, meta: dict[str, Any]) -> None:
    """Delete what the array's ``zarr.json`` does not name (see :func:`_is_garbage`)."""
    layout = _layout(meta)
    if layout is None:
        return
    garbage = [entry for entry in folder.iterdir() if _is_garbage(entry, layout)]
    for entry in garbage:
        _delete(entry)
    if garbage:
        logger.info("array %s: removed %d leftover(s) of an interrupted rewrite", folder, len(garbage))


def _delete(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink(missing_ok=True)


def _drop_consolidated(path: Path) -> None:
    """Rewrite the group's ``zarr.json`` without consolidated metadata (one atomic replace)."""
    group = zarr.open_group(str(path), mode="r+", zarr_format=3, use_consolidated=False)
    group.attrs.put(group.attrs.asdict())


def _write_json(file: Path, meta: dict[str, Any]) -> None:
    partial = file.with_name(f"{file.name}.{os.getpid()}{PARTIAL_SUFFIX}")
    partial.write_text(json.dumps(meta, indent=2))
    os.replace(partial, file)


def _rewrite_array(name: str, folder: Path, meta: dict[str, Any], target: Layout, progress: Progress) -> None:
    new_meta = _sharded(meta) if target == "sharded" else _per_shot(meta)
    side = folder / SIDE
    side.mkdir()
    _write_json(side / "zarr.json", new_meta)
    total = int(meta["shape"][0])
    block = max(
        meta["chunk_grid"]["configuration"]["chunk_shape"][0], new_meta["chunk_grid"]["configuration"]["chunk_shape"][0]
    )
    asyncio.run(_copy(name, folder, side, total, block, progress))
    for entry in side.iterdir():  # still invisible: the old zarr.json names none of them
        if entry.name != "zarr.json":
            os.replace(entry, folder / entry.name)
    os.replace(side / "zarr.json", folder / "zarr.json")  # the switch
    progress(CompactionStep(name, "switched", total, total))
    old = _layout(meta)
    assert old is not None
    _delete_old(name, folder, old, total, progress)
    side.rmdir()


async def _copy(name: str, folder: Path, side: Path, total: int, block: int, progress: Progress) -> None:
    """Copy every ``block`` of shots from the array in ``folder`` to the one in ``side``, each read back
    and compared as bytes; raise StoreCompactionError on a difference (nothing switched yet)."""
    old = await zarr.api.asynchronous.open_array(store=LocalStore(folder, read_only=True), zarr_format=3)
    new = await zarr.api.asynchronous.open_array(store=LocalStore(side), zarr_format=3)
    for start in range(0, total, block):
        stop = min(start + block, total)
        values = await old.getitem(slice(start, stop))
        await new.setitem(slice(start, stop), values)
        back = await new.getitem(slice(start, stop))
        if back.dtype != values.dtype or back.tobytes() != values.tobytes():
            raise StoreCompactionError(
                f"array {name} of {folder.parent}: shots {start}..{stop - 1} read back different after "
                "rewriting; the array keeps its old layout"
            )
        progress(CompactionStep(name, "copied", stop, total))


def _delete_old(name: str, folder: Path, old: Layout, total: int, progress: Progress) -> None:
    """Delete the old layout's chunk files, in shot order, reporting progress per file or folder."""
    if old == "per_shot":
        chunks = folder / _PER_SHOT_FOLDER
        entries = (
            sorted(chunks.iterdir(), key=lambda e: int(e.name) if e.name.isdigit() else -1) if chunks.is_dir() else []
        )
    else:
        entries = sorted(e for e in folder.iterdir() if _SHARD_FILE.match(e.name))
    for i, entry in enumerate(entries, 1):
        _delete(entry)
        progress(CompactionStep(name, "deleted", min(total, round(i * total / len(entries))), total))
    if old == "per_shot":
        _delete(folder / _PER_SHOT_FOLDER)
