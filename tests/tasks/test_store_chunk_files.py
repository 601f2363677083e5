"""The writer's own chunk files are byte for byte what zarr writes, and zarr reads them back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from tasks.store._arrays import COMPRESSOR
from tasks.store._chunk_files import ChunkFiles
from tasks.store._layout import PARTIAL_SUFFIX, SERIES_CHUNK

CASES = [
    ("image", (5, 16, 16), (1, 16, 16), "uint16", 3, np.arange(256, dtype="uint16").reshape(16, 16)),
    ("trace", (5, 100), (1, 100), "float32", 0, np.linspace(-1, 1, 100, dtype="float32")),
    ("flags", (5, 8), (1, 8), "bool", 4, np.array([True, False] * 4)),
    ("counts", (5, 3), (1, 3), "int64", 2, np.array([-7, 0, 2**40])),
    ("series", (2 * SERIES_CHUNK,), (SERIES_CHUNK,), "float64", slice(0, SERIES_CHUNK), np.random.rand(SERIES_CHUNK)),
    # an edge chunk: the array ends inside it, so it is stored padded with the fill value
    ("edge", (SERIES_CHUNK + 7,), (SERIES_CHUNK,), "int32", slice(SERIES_CHUNK, SERIES_CHUNK + 7), np.arange(7)),
]


def _pair(tmp_path: Path, name: str, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: str) -> list[zarr.Array]:
    arrays = []
    for which in ("ours", "zarr"):
        group = zarr.open_group(str(tmp_path / f"{which}.zarr"), mode="a", zarr_format=3)
        arrays.append(
            group.create_array(
                name,
                shape=shape,
                chunks=chunks,
                dtype=dtype,
                fill_value=-1 if dtype in ("int32", "int64") else 0,
                compressors=[COMPRESSOR],
                config={"write_empty_chunks": True},
            )
        )
    return arrays


@pytest.mark.parametrize(("name", "shape", "chunks", "dtype", "index", "value"), CASES, ids=[c[0] for c in CASES])
def test_a_whole_chunk_file_is_the_one_zarr_writes(
    tmp_path: Path, name: str, shape: tuple, chunks: tuple, dtype: str, index: int | slice, value: np.ndarray
) -> None:
    ours, theirs = _pair(tmp_path, name, shape, chunks, dtype)
    ChunkFiles().write([(ours, index, value)])
    theirs[index] = value

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("c/**/*") if p.is_file()}

    written = files(tmp_path / "ours.zarr" / name)
    assert written, "no chunk file written"
    assert written == files(tmp_path / "zarr.zarr" / name)
    reopened = zarr.open_array(str(tmp_path / "ours.zarr" / name), mode="r")
    np.testing.assert_array_equal(reopened[index], value)
    assert not list((tmp_path / "ours.zarr").rglob(f"*{PARTIAL_SUFFIX}"))


def test_writes_that_are_not_whole_chunks_go_through_zarr(tmp_path: Path) -> None:
    ours, _ = _pair(tmp_path, "series", (2 * SERIES_CHUNK,), (SERIES_CHUNK,), "float64")
    ours[:] = 5.0
    ChunkFiles().write([(ours, slice(3, 10), np.arange(7.0))])  # inside a chunk: zarr reads, modifies, writes
    expected = np.full(2 * SERIES_CHUNK, 5.0)
    expected[3:10] = np.arange(7.0)
    np.testing.assert_array_equal(ours[:], expected)


def test_an_array_with_other_codecs_goes_through_zarr(tmp_path: Path) -> None:
    group = zarr.open_group(str(tmp_path / "other.zarr"), mode="a", zarr_format=3)
    array = group.create_array("z", shape=(4, 3), chunks=(1, 3), dtype="float64")  # zarr's default: zstd
    ChunkFiles().write([(array, 2, np.array([1.0, 2.0, 3.0]))])
    np.testing.assert_array_equal(array[2], [1.0, 2.0, 3.0])
