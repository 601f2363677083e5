"""SIGKILL of ``shotflow run`` / ``shotflow resume`` at random moments (30 kills on 6 stores).

After every kill: the store opens with plain ``xr.open_zarr``, every completed shot is bit-exact
against an uninterrupted run (the simulated data are deterministic per shot index), no shot
completed before the kill is lost, and ``store_state`` reports ``crashed`` (the attribute on disk
still says ``running``; the writer's pid is dead and its lock free — ``shotflow show`` prints
"crashed" with that explanation). Finally ``shotflow resume`` completes each store and the
dataset equals the uninterrupted run's. Chains run three at a time (threads waiting on processes).
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from _sigkill import SHOTS, chain, cli_env, reference_run

pytestmark = pytest.mark.usefixtures("prefect_server")

STORES = 6
KILLS_PER_STORE = 5
PARALLEL = 3


def test_sigkill_at_random_moments_loses_nothing_and_resume_completes(tmp_path: Path) -> None:
    env = cli_env(PREFECT_API_URL.value())
    spec, reference = reference_run(tmp_path / "reference", env)
    assert reference.sizes["shot"] == SHOTS

    def one(i: int):
        folder = tmp_path / f"chain{i}"
        folder.mkdir()
        return chain(folder, reference, env, KILLS_PER_STORE, seed=i)

    with ThreadPoolExecutor(PARALLEL) as pool:
        reports = list(pool.map(one, range(STORES)))
    kills = sum(r.kills for r in reports)
    mid_run = sum(r.mid_run for r in reports)
    assert kills == STORES * KILLS_PER_STORE >= 30
    assert sum(r.shots_lost for r in reports) == 0
    assert mid_run >= kills // 3, f"too few kills landed mid-scan: {reports}"
    print(f"\n{kills} kills: {mid_run} mid-scan, {sum(r.before_store for r in reports)} before the store existed")


def test_show_explains_a_crashed_store(tmp_path: Path) -> None:
    env = cli_env(PREFECT_API_URL.value())
    spec, reference = reference_run(tmp_path / "reference", env)
    store = tmp_path / "s.zarr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows._cli", "run", str(spec), "--store", str(store)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import time

        deadline = time.monotonic() + 120
        while not (store / "status" / "c").exists():  # a first shot is being stored
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    shown = subprocess.run(
        [sys.executable, "-m", "flows._cli", "show", str(store)], env=env, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    state_line = next(line for line in shown.stdout.splitlines() if line.startswith("state"))
    assert "crashed" in state_line
    print("\n" + state_line)
