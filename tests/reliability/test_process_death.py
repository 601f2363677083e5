"""SIGKILL of ``shotflow run`` / ``shotflow resume`` at random moments, then a plain ``shotflow resume``.

The default configuration a physicist gets: no ``PREFECT_API_URL`` (shotflow's local server),
one ``PREFECT_HOME`` shared by every command, and a kill of the command's whole process group
(compile workers included; some kills also take the local server down, as a power cut does).
After every kill: the store opens with plain ``xr.open_zarr``, every completed shot is bit-exact
against an uninterrupted run (the simulated data are deterministic per shot index), no shot
completed before the kill is lost, and ``store_state`` reports ``crashed``. Each next command is
the plain one: it never waits for the killed run's devices (it takes them over at once: their
holder's process is gone). Finally ``shotflow resume`` completes each store and the dataset
equals the uninterrupted run's. Chains run three at a time (threads waiting on processes).
"""

from __future__ import annotations

import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _sigkill import SHOTFLOW, SHOTS, chain, kill_group, reference_run, shotflow, write_spec

STORES = 3
KILLS_PER_STORE = 3
PARALLEL = 3


def test_sigkill_at_random_moments_loses_nothing_and_a_plain_resume_completes(
    tmp_path: Path, terminal: dict[str, str]
) -> None:
    spec, reference = reference_run(tmp_path / "reference", terminal)
    assert reference.sizes["shot"] == SHOTS

    def one(i: int):
        folder = tmp_path / f"chain{i}"
        folder.mkdir()
        return chain(folder, reference, terminal, KILLS_PER_STORE, seed=i)

    with ThreadPoolExecutor(PARALLEL) as pool:
        reports = list(pool.map(one, range(STORES)))
    kills = sum(r.kills for r in reports)
    mid_run = sum(r.mid_run for r in reports)
    resumes = [s for r in reports for s in r.resume_seconds]
    assert kills == STORES * KILLS_PER_STORE >= 9
    assert sum(r.shots_lost for r in reports) == 0
    assert mid_run >= kills // 3, f"too few kills landed mid-scan: {reports}"
    assert sum(r.takeovers for r in reports) >= 1, "no resume had devices to take over"
    print(
        f"\n{kills} kills: {mid_run} mid-scan, {sum(r.before_store for r in reports)} before the store existed, "
        f"{sum(r.server_kills for r in reports)} with the local server; "
        f"resume to first shot: median {statistics.median(resumes):.1f} s, max {max(resumes):.1f} s"
        if resumes
        else ""
    )


def test_show_explains_a_crashed_store(tmp_path: Path, terminal: dict[str, str]) -> None:
    spec = write_spec(tmp_path)  # no reference run: only the state line is checked
    store = tmp_path / "s.zarr"
    proc = shotflow(["run", str(spec), "--store", str(store)], terminal, tmp_path / "run.log")
    try:
        deadline = time.monotonic() + 120
        while not (store / "status" / "c").exists():  # a first shot is being stored
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        kill_group(proc)
    shown = subprocess.run([SHOTFLOW, "show", str(store)], env=terminal, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    state_line = next(line for line in shown.stdout.splitlines() if line.startswith("state"))
    assert "crashed" in state_line
    print("\n" + state_line)
