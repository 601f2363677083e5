"""Compaction: files and seconds before/after for N images, against raw zarr writes in the same run.

A store of N shots of a 512x512 uint16 image is written by the store writer (one chunk file per
shot), then compacted with :func:`tasks.store.compact_store`. Baselines in the same run, same
codecs: zarr writing the same images into a per-shot-chunked array, and straight into shards.

    python bench/compaction.py [--shots 128] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
import zarr
from zarr.codecs import BloscCodec

from tasks.records import SequenceState, ShotRecord
from tasks.store import ShotStoreWriter, compact_store, count_files

IMAGE_SHAPE = (512, 512)


def _images(shots: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    distinct = [rng.poisson(100, IMAGE_SHAPE).astype(np.uint16) for _ in range(16)]
    return [distinct[i % 16] for i in range(shots)]


async def _write_store(path: Path, images: list[np.ndarray]) -> None:
    async with ShotStoreWriter.open(path, spec_json="{}", expected_shots=len(images), parameter_units={}) as writer:
        for i, image in enumerate(images):
            await writer.write(ShotRecord(i, {"x": float(i)}, {"camera.atoms": image}, 1.7e9 + i, 1.7e9 + i + 0.01))
        await writer.finish(SequenceState.FINISHED)


def _raw(path: Path, images: list[np.ndarray], shards: bool) -> float:
    started = time.perf_counter()
    array = zarr.create_array(
        str(path),
        shape=(len(images), *IMAGE_SHAPE),
        chunks=(1, *IMAGE_SHAPE),
        shards=(len(images), *IMAGE_SHAPE) if shards else None,
        dtype="uint16",
        compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")],
    )
    array[:] = np.stack(images)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    images = _images(args.shots)
    print(
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}, zarr {zarr.__version__}; {args.shots} images of 512x512 uint16"
    )
    print(
        "run  store files before -> after  compact s  | raw zarr per-shot s  raw zarr sharded s  compact / raw sharded"
    )
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            store = Path(folder) / "s.zarr"
            anyio.run(_write_store, store, images)
            report = compact_store(store)
            per_shot = _raw(Path(folder) / "raw.zarr", images, shards=False)
            sharded = _raw(Path(folder) / "raw-sharded.zarr", images, shards=True)
            print(
                f"{run:>3}  {report.files_before:>6} -> {report.files_after:<6} ({count_files(store / 'camera.atoms')} in "
                f"the image array)  {report.seconds:7.2f}  | {per_shot:8.2f}  {sharded:8.2f}  {report.seconds / sharded:6.2f}"
            )


if __name__ == "__main__":
    main()
