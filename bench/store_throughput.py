"""Throughput of the results-store writer vs writing the same arrays with zarr directly.

Per shot: a 512x512 uint16 camera image and a 10k-sample float32 trace, plus two scan
parameters. Both runs use the same chunking and codecs, on the same machine, in the same run.
A third run goes through the per-shot analysis stage with two analyses on (``roi_sum`` of the
image, ``peak`` of the trace), as a run with ``analyses`` does.

    python bench/store_throughput.py [--shots 600] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import numpy as np
import zarr
from zarr.codecs import BloscCodec

from devices.analyses import Peak, RoiSum
from tasks.engine import ShotAnalyser, analysed
from tasks.records import SequenceState, ShotRecord
from tasks.store import ShotStoreWriter

ANALYSES = {
    "atoms": RoiSum(data="camera.image", roi=(128, 384, 128, 384)),
    "pulse": Peak(data="scope.trace"),
}

IMAGE_SHAPE = (512, 512)
TRACE_LENGTH = 10_000
DISTINCT = 16  # distinct payloads, cycled, so data generation stays out of the timing


def _payloads() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[: IMAGE_SHAPE[0], : IMAGE_SHAPE[1]]
    payloads = []
    for k in range(DISTINCT):
        blob = 3000 * np.exp(-((x - 256 - k) ** 2 + (y - 256) ** 2) / (2 * 40.0**2))
        image = (200 + blob + rng.normal(0, 20, IMAGE_SHAPE)).clip(0, 65535).astype(np.uint16)
        trace = (np.sin(np.linspace(0, 20, TRACE_LENGTH)) + rng.normal(0, 0.05, TRACE_LENGTH)).astype(np.float32)
        payloads.append((image, trace))
    return payloads


def bench_writer(
    path: Path, shots: int, payloads: list[tuple[np.ndarray, np.ndarray]], *, with_analyses: bool = False
) -> float:
    """Seconds to write ``shots`` records through ShotStoreWriter (and the analyses), until finish() returns."""

    async def run() -> float:
        async with ShotStoreWriter.open(
            path,
            spec_json="{}",
            expected_shots=shots,
            parameter_units={"detuning": "Hz", "power": "W"},
        ) as writer:
            start = time.perf_counter()
            async with analysed(writer.write, ShotAnalyser(ANALYSES if with_analyses else {})) as store:
                await _write_all(store, shots, payloads)
            await writer.finish(SequenceState.FINISHED)
            return time.perf_counter() - start

    return anyio.run(run)


async def _write_all(
    store: Callable[[ShotRecord], Awaitable[None]], shots: int, payloads: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    for i in range(shots):
        image, trace = payloads[i % DISTINCT]
        now = time.time()
        record = ShotRecord(
            index=i,
            parameters={"detuning": i * 1e3, "power": 1e-3},
            data={"camera.image": image, "scope.trace": trace},
            start_time=now,
            end_time=now,
        )
        await store(record)


def bench_raw_zarr(path: Path, shots: int, payloads: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Seconds to write the same arrays with zarr directly: one setitem per array per shot."""
    group = zarr.open_group(str(path), mode="w-", zarr_format=3)
    compressors = [BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")]
    image = group.create_array(
        "image",
        shape=(shots, *IMAGE_SHAPE),
        chunks=(1, *IMAGE_SHAPE),
        dtype="uint16",
        compressors=compressors,
    )
    trace = group.create_array(
        "trace",
        shape=(shots, TRACE_LENGTH),
        chunks=(1, TRACE_LENGTH),
        dtype="float32",
        compressors=compressors,
    )
    start = time.perf_counter()
    for i in range(shots):
        image[i], trace[i] = payloads[i % DISTINCT]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=600)
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="alternating runs; the best of each is kept",
    )
    args = parser.parse_args()
    payloads = _payloads()
    print(f"machine: {platform.platform()}, python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"zarr {zarr.__version__}, numpy {np.__version__}")
    print(f"per shot: {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} uint16 image + {TRACE_LENGTH} float32 trace")
    writer_times, raw_times, analysed_times = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            raw_times.append(bench_raw_zarr(Path(tmp) / f"raw{r}.zarr", args.shots, payloads))
            writer_times.append(bench_writer(Path(tmp) / f"writer{r}.zarr", args.shots, payloads))
            analysed_times.append(
                bench_writer(Path(tmp) / f"analysed{r}.zarr", args.shots, payloads, with_analyses=True)
            )
            print(
                f"run {r}: raw zarr {args.shots / raw_times[-1]:7.1f} shots/s   "
                f"ShotStoreWriter {args.shots / writer_times[-1]:7.1f} shots/s   "
                f"with 2 analyses {args.shots / analysed_times[-1]:7.1f} shots/s"
            )
    raw, writer = args.shots / min(raw_times), args.shots / min(writer_times)
    with_analyses = args.shots / min(analysed_times)
    print(
        f"best: raw zarr {raw:.1f} shots/s, ShotStoreWriter {writer:.1f} shots/s (ratio {writer / raw:.2f}), "
        f"with 2 analyses {with_analyses:.1f} shots/s (ratio {with_analyses / raw:.2f})"
    )


if __name__ == "__main__":
    main()
