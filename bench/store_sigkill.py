"""SIGKILL the results-store writer at random moments, N times, and check every store.

Each trial starts a fresh writer process (a 64x64 uint16 image, a 1000-sample trace and a
scalar per shot, deterministic from the shot index), kills it at a random moment, then
checks: the store opens, every shot marked completed is bit-exact, and resuming in the same
store completes the scan. Prints a summary (kills that landed mid-scan, shots salvaged).

    python bench/store_sigkill.py [N_TRIALS=50] [--shots 400] [--window 1.5]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np

from tasks.records import SequenceState, ShotRecord
from tasks.store import ShotStoreWriter, open_sequence, store_state

SPEC_JSON = json.dumps({"name": "sigkill bench"})

CHILD = """
import sys
sys.path.insert(0, {bench_dir!r})
from store_sigkill import write_all
import anyio
anyio.run(write_all, sys.argv[1], int(sys.argv[2]), sys.argv[3] == "known", False, True)
"""


def record(i: int) -> ShotRecord:
    """The deterministic record of shot ``i``."""
    rng = np.random.default_rng(i)
    data = {
        "camera.image": rng.integers(0, 65535, (64, 64), dtype=np.uint16),
        "scope.trace": rng.standard_normal(1000).astype(np.float32),
        "scope.peak": float(i),
    }
    return ShotRecord(i, {"x": i * 1e-3}, data, 1.7e9 + i, 1.7e9 + i + 0.01)


async def write_all(path: str, shots: int, known: bool, resume: bool, announce: bool = False) -> None:
    """Write (or with ``resume`` complete) the scan; with ``announce`` print ``ready`` once open."""
    async with ShotStoreWriter.open(
        path,
        spec_json=SPEC_JSON,
        expected_shots=shots if known else None,
        parameter_units={"x": "m"},
        resume=resume,
    ) as writer:
        if announce:
            print("ready", flush=True)
        for i in range(shots):
            if i not in writer.completed:
                await writer.write(record(i))
        await writer.finish(SequenceState.FINISHED)


def check(path: Path, shots: int | None = None) -> int:
    """Open the store, verify completed shots bit-exact; return how many are completed."""
    ds = open_sequence(path)
    if ds.sizes["shot"]:
        images, traces = ds["camera.image"].values, ds["scope.trace"].values
        for row, i in enumerate(ds["shot"].values):
            expected = record(int(i)).data
            assert np.array_equal(images[row], expected["camera.image"]), f"shot {i} image differs"
            assert np.array_equal(traces[row], expected["scope.trace"]), f"shot {i} trace differs"
    if shots is not None:
        assert ds.sizes["shot"] == shots, f"resume left {shots - ds.sizes['shot']} shots missing"
    return int(ds.sizes["shot"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trials", type=int, nargs="?", default=50)
    parser.add_argument("--shots", type=int, default=400)
    parser.add_argument(
        "--window",
        type=float,
        default=1.5,
        help="kill within this many seconds of ready",
    )
    args = parser.parse_args()
    child = CHILD.format(bench_dir=str(Path(__file__).parent))
    rng = random.Random(0)
    mid_scan = salvaged = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for trial in range(args.trials):
            path = Path(tmp) / f"trial{trial}.zarr"
            known = trial % 2 == 0
            argv = [
                sys.executable,
                "-c",
                child,
                str(path),
                str(args.shots),
                "known" if known else "unknown",
            ]
            process = subprocess.Popen(argv, stdout=subprocess.PIPE)
            assert process.stdout is not None and process.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0, args.window))
            process.send_signal(signal.SIGKILL)
            process.wait()
            state = store_state(path)["state"]
            completed = check(path)
            mid_scan += state == "crashed"
            salvaged += completed
            anyio.run(write_all, str(path), args.shots, known, True)
            check(path, args.shots)
            print(f"trial {trial:3d}: {state:8s} {completed:4d}/{args.shots} shots intact, resumed to the end")
    print(
        f"{args.trials} trials in {time.perf_counter() - start:.0f} s: {mid_scan} kills mid-scan, "
        f"{salvaged} completed shots all bit-exact, every store resumed to completion"
    )


if __name__ == "__main__":
    main()
