"""Memory over a long sequence: RSS of the process running run_sequence, sampled every 1000 shots.

20,000 zero-length shots (no timeline) on one light device (sim.rf_source, no settle time),
on Prefect's embedded server, writing a zarr store in a temporary folder. A progress
listener (``flows.progress_listener``, called about ten times a second) reads VmRSS from
/proc/self/status each time the completed count passes a multiple of ``--every``. The slope
(least squares, MB per 1000 shots) is fitted after ``--warmup`` shots: caches and pools
fill at the start, growth that continues after is per-shot.

``--shots-per-task`` defaults to 50 so that the 20,000 shots take under three minutes
(each Prefect task run costs the client ~5-10 ms of CPU); ``--shots-per-task 1`` checks for
growth per task run (use fewer shots: ``--shots 3000``).

    python bench/engine_memory.py [--shots 20000] [--shots-per-task 50] [--every 1000] [--warmup 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (sets up the private Prefect home before Prefect is imported)
import numpy as np
from _common import lab_spec, machine, read_store_times, rss_mb

from flows.run import Progress, progress_listener, run_sequence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shots", type=int, default=20_000)
    parser.add_argument("--shots-per-task", type=int, default=50)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=4000)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="shotflow-bench-"))
    samples: list[tuple[int, float]] = []

    def listener(progress: Progress) -> None:
        mark = (samples[-1][0] + args.every) if samples else 0
        if progress.completed >= mark:
            samples.append((progress.completed, rss_mb()))

    try:
        asyncio.run(run_sequence(lab_spec(name="warmup", shots=3, duration_ms=5), store=str(root / "w.zarr")))
        gc.collect()
        spec = lab_spec(
            name="memory",
            shots=args.shots,
            duration_ms=0,
            devices=("rf",),
            settle="0 s",
            execution={"shots_per_task": args.shots_per_task},
        )
        started = time.perf_counter()
        with progress_listener(listener):
            state = asyncio.run(run_sequence(spec, store=str(root / "m.zarr"), return_state=True))
        wall = time.perf_counter() - started
        if not state.is_completed():
            raise RuntimeError(f"run ended {state.type}: {state.message}")
        status, _, _ = read_store_times(root / "m.zarr")
        stored = int((status == 1).sum())
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"machine: {machine()}")
    print(
        f"{args.shots} zero-length shots, shots_per_task={args.shots_per_task}: {wall:.1f} s, "
        f"{stored}/{args.shots} shots completed in the store"
    )
    print("shots     RSS MB")
    for shots, mb in samples:
        print(f"{shots:>6} {mb:9.1f}")
    late = [(s, m) for s, m in samples if s >= args.warmup]
    if len(late) >= 2:
        x, y = np.array(late, dtype=float).T
        slope = np.polyfit(x / 1000, y, 1)[0]
        print(f"slope after {args.warmup} shots: {slope:+.2f} MB per 1000 shots ({y[-1] - y[0]:+.1f} MB overall)")
    else:
        print("not enough samples after the warm-up for a slope")


if __name__ == "__main__":
    main()
