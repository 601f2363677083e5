"""Whole-chunk writes of the writer's arrays, straight to their chunk files, byte for byte as zarr writes them.

zarr's own write path costs about 1.3 ms of CPU per chunk (its indexing, codec pipeline and
async machinery) against 0.15 ms for the file write itself; a store that writes a few chunks
per shot then takes the GIL from the shot loop for milliseconds per shot. The writer's arrays
are simple (a regular grid, a ``bytes`` serializer, a Blosc compressor), so their whole chunks
are encoded here with numcodecs' Blosc (the codec zarr itself uses, from the array's own
metadata) and written like zarr's local store writes a key: a ``.partial`` file, then a rename.
Any other array, or a write that is not a whole chunk, goes through zarr
(:func:`tasks.store._zarr_io.write_concurrently`).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, BytesCodec
from zarr.storage import LocalStore

from ._layout import PARTIAL_SUFFIX
from ._zarr_io import Write, ZarrLoop, write_concurrently

__all__ = ["ChunkFiles"]

_SHUFFLE = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}


class _Encoding:
    """How one array's chunks are encoded and where they live."""

    def __init__(self, array: zarr.Array, folder: Path) -> None:
        metadata = array.metadata
        serializer, compressor = metadata.codecs
        config = compressor.to_dict()["configuration"]
        self.blosc = Blosc(
            cname=str(config["cname"]),
            clevel=int(config["clevel"]),
            shuffle=_SHUFFLE[str(config["shuffle"])],
            blocksize=int(config["blocksize"]),
            typesize=int(config["typesize"]),
        )
        endian = getattr(serializer, "endian", None)
        order = "<" if endian is None or str(getattr(endian, "value", endian)) == "little" else ">"
        self.dtype = np.dtype(array.dtype).newbyteorder(order) if np.dtype(array.dtype).itemsize > 1 else array.dtype
        self.chunks = tuple(int(c) for c in array.chunks)
        self.shape = tuple(int(s) for s in array.shape)
        self.fill_value = metadata.fill_value
        self.key = metadata.chunk_key_encoding.encode_chunk_key
        self.folder = folder

    def chunk(self, index: int | slice, value: np.ndarray) -> tuple[tuple[int, ...], np.ndarray] | None:
        """The chunk coordinates and full-chunk data of a write to ``index``, or None if not one whole chunk."""
        step = self.chunks[0]
        if isinstance(index, slice):
            start, stop, stride = index.indices(self.shape[0])
            if stride != 1 or len(self.shape) != 1 or start % step or stop - start > step:
                return None
            if stop != min(start + step, self.shape[0]):
                return None
            data = np.full(step, self.fill_value, self.dtype)  # an edge chunk is stored at full size
            data[: stop - start] = value
            return (start // step,), data
        if step != 1 or tuple(np.shape(value)) != self.chunks[1:]:
            return None
        return (index, *(0 for _ in self.chunks[1:])), np.asarray(value, dtype=self.dtype).reshape(self.chunks)

    def encode(self, data: np.ndarray) -> bytes:
        raw = np.ascontiguousarray(data, dtype=self.dtype).view(np.uint8).reshape(-1)
        return bytes(self.blosc.encode(raw))


def _encodable(array: zarr.Array) -> bool:
    metadata = array.metadata
    codecs = getattr(metadata, "codecs", ())
    return (
        isinstance(array.store_path.store, LocalStore)
        and len(codecs) == 2
        and isinstance(codecs[0], BytesCodec)
        and isinstance(codecs[1], BloscCodec)
        and str(getattr(metadata.chunk_grid, "name", "regular")) == "regular"
        and np.dtype(array.dtype).kind in "biuf"
    )


class ChunkFiles:
    """Writes whole chunks of one store's arrays as files (see the module docstring). One thread at a time."""

    def __init__(self) -> None:
        self._encodings: dict[tuple[str, tuple[int, ...]], _Encoding | None] = {}
        self._folders: set[Path] = set()

    def write(self, writes: Sequence[Write], loop: ZarrLoop | None = None) -> None:
        """Write every ``(array, index, value)``; those that are not whole chunks of a plain array go through zarr."""
        through_zarr = []
        for array, index, value in writes:
            encoding = self._encoding(array)
            chunk = encoding.chunk(index, value) if encoding is not None else None
            if encoding is None or chunk is None:
                through_zarr.append((array, index, value))
                continue
            coords, data = chunk
            self._put(encoding.folder / encoding.key(coords), encoding.encode(data))
        write_concurrently(through_zarr, loop)

    def _encoding(self, array: zarr.Array) -> _Encoding | None:
        key = (array.store_path.path, tuple(array.shape))  # a resize gives a new encoding (edge chunks)
        if key not in self._encodings:
            encodable = _encodable(array)
            folder = Path(array.store_path.store.root) / array.store_path.path if encodable else Path()
            self._encodings[key] = _Encoding(array, folder) if encodable else None
            if encodable:
                self._folders.add(folder)  # zarr made it with the array's metadata
        return self._encodings[key]

    def _make_folder(self, folder: Path) -> None:
        """Create ``folder`` and the parents this writer has not made yet, outermost first: one
        ``mkdir`` each, no stat (an array's own folder is known to exist)."""
        missing = []
        while folder not in self._folders:
            missing.append(folder)
            folder = folder.parent
        for created in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(created)
        self._folders.update(missing)

    def _put(self, path: Path, payload: bytes) -> None:
        self._make_folder(path.parent)
        partial = f"{path}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"
        # plain os calls: open() adds buffering and checks, and each system call lets the
        # shot loop take the GIL, so fewer calls mean fewer hand-overs between the threads
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            try:
                view = memoryview(payload)
                while view:  # a short write (a file-size limit, a full disk) is retried: the retry raises
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
