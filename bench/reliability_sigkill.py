"""SIGKILL ``shotflow run`` / ``shotflow resume`` at random moments, N times, then a plain resume.

The user's configuration: the ``shotflow`` executable with no ``PREFECT_API_URL`` (shotflow's
local server), one ``PREFECT_HOME`` for every command, and a SIGKILL of the command's whole
process group (some also kill the local server: a power cut). Chains of kills on each store
(most kills a few ms after a random shot ended, some during start-up), each followed by checks
(plain xarray opens the store, completed shots bit-exact, nothing completed before a kill lost,
state ``crashed``) and by a plain ``shotflow resume`` (no lock reset, nothing repaired), then a
resume to the end compared with an uninterrupted run. Prints trials, kills mid-scan, shots lost
(must be 0) and how long each resume took to start its first shot.

    python bench/reliability_sigkill.py [N_KILLS=60] [--per-store 5] [--parallel 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
# the repository first (its packages, not the test folders of the same names), then the test helpers
sys.path[:0] = [str(_ROOT), str(_ROOT / "tests" / "reliability"), str(_ROOT / "tests")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kills", type=int, nargs="?", default=60)
    parser.add_argument("--per-store", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    from _sigkill import SHOTFLOW, chain, reference_run

    stores = -(-args.kills // args.per_store)
    work = Path(tempfile.mkdtemp(prefix="shotflow-sigkill-"))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(work / "prefect-home"), "PREFECT_LOGGING_LEVEL": "WARNING"}
    started = time.monotonic()
    try:
        _, reference = reference_run(work / "reference", env)

        def one(i: int):
            folder = work / f"chain{i}"
            folder.mkdir()
            return chain(folder, reference, env, args.per_store, seed=i)

        with ThreadPoolExecutor(args.parallel) as pool:
            reports = list(pool.map(one, range(stores)))
    finally:
        subprocess.run([SHOTFLOW, "server", "stop"], env=env, timeout=120, check=False, capture_output=True)
    kills = sum(r.kills for r in reports)
    resumes = sorted(s for r in reports for s in r.resume_seconds)
    print(f"machine                {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"trials (kills)         {kills} on {stores} stores ({time.monotonic() - started:.0f} s)")
    print(f"kills mid-scan         {sum(r.mid_run for r in reports)}")
    print(f"kills before the store {sum(r.before_store for r in reports)}")
    print(f"kills of the server    {sum(r.server_kills for r in reports)} (power cuts)")
    print(f"process already ended  {sum(r.after_end for r in reports)}")
    print(f"devices taken over     {sum(r.takeovers for r in reports)} resumes (none waited for a lock)")
    print(f"resumed to the end     {stores} stores, all equal to the uninterrupted run")
    print(f"shots lost             {sum(r.shots_lost for r in reports)}")
    if resumes:
        print(
            f"resume -> first shot   median {statistics.median(resumes):.1f} s, max {resumes[-1]:.1f} s "
            f"({len(resumes)} resumes that reached a shot)"
        )


if __name__ == "__main__":
    main()
