"""SIGKILL ``shotflow run`` / ``shotflow resume`` at random moments, N times, on an embedded server.

Chains of kills on each store (most kills a few ms after a random shot ended, some during
start-up), each followed by checks (plain xarray opens the store, completed shots bit-exact,
nothing completed before a kill lost, state ``crashed``), then a resume to the end compared with
an uninterrupted run. Prints trials, kills mid-scan and shots lost (must be 0).

    python bench/reliability_sigkill.py [N_KILLS=200] [--per-store 5] [--parallel 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "reliability"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kills", type=int, nargs="?", default=200)
    parser.add_argument("--per-store", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="shotflow-bench-prefect-"))
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    os.environ.pop("PREFECT_API_URL", None)

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from _sigkill import chain, cli_env, reference_run

    stores = -(-args.kills // args.per_store)
    work = Path(tempfile.mkdtemp(prefix="shotflow-sigkill-"))
    started = time.monotonic()
    with prefect_test_harness(server_startup_timeout=120):
        env = cli_env(PREFECT_API_URL.value())
        _, reference = reference_run(work / "reference", env)

        def one(i: int):
            folder = work / f"chain{i}"
            folder.mkdir()
            return chain(folder, reference, env, args.per_store, seed=i)

        with ThreadPoolExecutor(args.parallel) as pool:
            reports = list(pool.map(one, range(stores)))
    kills = sum(r.kills for r in reports)
    print(f"trials (kills)         {kills} on {stores} stores ({time.monotonic() - started:.0f} s)")
    print(f"kills mid-scan         {sum(r.mid_run for r in reports)}")
    print(f"kills before the store {sum(r.before_store for r in reports)}")
    print(f"process already ended  {sum(r.after_end for r in reports)}")
    print(f"resumed to the end     {sum(r.final_resumes for r in reports)} stores, all equal to the uninterrupted run")
    print(f"shots lost             {sum(r.shots_lost for r in reports)}")


if __name__ == "__main__":
    main()
