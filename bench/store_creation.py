"""Cost of creating a results store, by expected shot count: time, memory, files on disk.

Each count runs in a fresh interpreter (peak RSS is per process): open the writer, write one
shot, finish. Creation must not depend on the expected count (the arrays grow in blocks).

    python bench/store_creation.py [--counts 1000 10000000 1000000000]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time, tracemalloc
from pathlib import Path
import anyio, numpy as np
from tasks.records import ShotRecord
from tasks.store import ShotStoreWriter

path, count = Path(sys.argv[1]), int(sys.argv[2])

async def main():
    tracemalloc.start()
    t0 = time.perf_counter()
    async with ShotStoreWriter.open(path, spec_json="{}", expected_shots=count, parameter_units={"x": "m"}) as w:
        created = time.perf_counter() - t0
        files = sum(1 for p in path.rglob("*") if p.is_file())
        await w.write(ShotRecord(index=0, parameters={"x": 0.0}, data={"camera.atoms": np.float64(1.0)},
                                 start_time=0.0, end_time=1.0))
    total = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"count": count, "create_s": created, "one_shot_total_s": total, "files_at_create": files,
                      "traced_peak_mb": peak / 2**20, "max_rss_mb": rss}))

anyio.run(main)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10**3, 10**7, 10**9])
    args = parser.parse_args()
    print(f"{platform.platform()}, Python {platform.python_version()}")
    print(f"{'expected':>12} {'create s':>9} {'total s':>8} {'files':>6} {'traced MB':>10} {'max RSS MB':>11}")
    for count in args.counts:
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(Path(tmp) / "s.zarr"), str(count)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{r['count']:>12} {r['create_s']:>9.3f} {r['one_shot_total_s']:>8.3f} {r['files_at_create']:>6} "
            f"{r['traced_peak_mb']:>10.1f} {r['max_rss_mb']:>11.1f}"
        )


if __name__ == "__main__":
    main()
