"""SIGKILL trials of ``shotflow run`` / ``shotflow resume`` (shared by the test and the benchmark).

One *chain* per store: run the CLI in a subprocess and SIGKILL it after a random delay, check
the store, resume it (killed again) a few times, then resume it to the end and compare the
final dataset with an uninterrupted reference run.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from tasks import open_sequence, store_state

from _rlab import lab_dict

SHOTS = 40
EARLY_KILLS = 0.2
"""Fraction of kills at a random moment of start-up (before or while the store is created)."""
EARLY_WINDOW_S = (0.0, 4.0)
JITTER_S = (0.0, 0.03)
"""The other kills land this long after the end of a random shot (from the sim journal)."""
COMPARED = ("camera.atoms", "rf.frequency", "detuning", "attempts", "status")


@dataclass
class ChainReport:
    """What one chain of kills saw."""

    kills: int = 0
    mid_run: int = 0  # kills that landed with 0 < completed < SHOTS
    before_store: int = 0  # kills before the store existed
    after_end: int = 0  # the process had already finished
    states: list[str] = field(default_factory=list)
    shots_lost: int = 0  # completed shots that vanished or changed (must stay 0)
    final_resumes: int = 0


def write_spec(folder: Path, shots: int = SHOTS, journal: Path | None = None, suffix: str = "") -> Path:
    spec = lab_dict(
        shots=shots, pulse="20 ms", devices=("camera", "rf"), name="sigkill", journal=journal, suffix=suffix
    )
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "flows._cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def run_to_end(args: list[str], env: dict[str, str]) -> None:
    proc = cli(args, env)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]


def _is_store(path: Path) -> bool:
    return (path / "zarr.json").exists()


def free_devices(devices: list[str], api_url: str) -> None:
    """Give back the hardware locks a killed run still holds (its lease would expire after
    ``LEASE_SECONDS``): what an operator does before resuming at once."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    from flows import device_limit_name

    async def free() -> None:
        async with get_client() as client:
            for device in devices:
                try:
                    await client.update_global_concurrency_limit(
                        device_limit_name(device), GlobalConcurrencyLimitUpdate(active_slots=0)
                    )
                except Exception:  # noqa: BLE001 - not created yet: nothing to free
                    pass

    asyncio.run(free())


def _named(ds: xr.Dataset, suffix: str, name: str) -> xr.DataArray:
    device, dot, label = name.partition(".")
    return ds[f"{device}{suffix}.{label}"] if dot else ds[name]


def check_killed_store(path: Path, reference: xr.Dataset, before: set[int], suffix: str = "") -> set[int]:
    """The store opens with xarray, its completed shots are bit-exact, it reads crashed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # leftover temp files are "not recognized" by zarr
        plain = xr.open_zarr(path)
    completed = set(np.flatnonzero(plain["status"].values == 1).tolist())
    assert before <= completed, f"completed shots lost: {sorted(before - completed)}"
    ds = open_sequence(path)
    assert set(ds["shot"].values.tolist()) == completed
    rows = sorted(completed)
    # with no shot completed there is nothing to compare: a writer killed inside its
    # first shot may have created the data arrays but not yet the parameter coordinates
    for name in COMPARED if rows else ():
        np.testing.assert_array_equal(_named(ds, suffix, name).values, reference[name].values[rows], err_msg=name)
    info = store_state(path)
    assert info["state"] in {"crashed", "finished"}, info["state"]
    if info["state"] == "crashed":
        assert not info["writer_alive"]
    return completed


def _shots_ended(journal: Path) -> int:
    try:
        return journal.read_bytes().count(b'"run_end"')
    except FileNotFoundError:
        return 0


def _wait_then_kill_point(proc: subprocess.Popen[bytes], journal: Path, target: int, timeout: float = 240) -> None:
    """Return once ``target`` shot ends are journaled (or the process ended)."""
    deadline = time.monotonic() + timeout
    while _shots_ended(journal) < target and proc.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.005)


def chain(folder: Path, reference: xr.Dataset, env: dict[str, str], kills: int, seed: int) -> ChainReport:
    """``kills`` SIGKILLs on one store, then a resume to the end; returns what happened.

    Most kills land a random few ms after the end of a random shot (read from the sim journal,
    whatever the machine's load); some land at a random moment of start-up.
    """
    rng = random.Random(seed)
    store = folder / "s.zarr"
    journal = folder / "journal.jsonl"
    suffix = f"_{seed}"
    spec = write_spec(folder, journal=journal, suffix=suffix)
    report = ChainReport()
    completed: set[int] = set()
    for _ in range(kills):
        if _is_store(store):
            proc = cli(["resume", str(store)], env)
        else:  # killed before the store existed (or never started): a fresh run
            shutil.rmtree(store, ignore_errors=True)
            proc = cli(["run", str(spec), "--store", str(store)], env)
        if rng.random() < EARLY_KILLS:
            time.sleep(rng.uniform(*EARLY_WINDOW_S))
        else:
            # each shot ends once per device: two run_end lines per shot (camera, rf)
            remaining = SHOTS - len(completed)
            target = _shots_ended(journal) + 2 * rng.randint(1, max(1, remaining)) - rng.randint(0, 1)
            _wait_then_kill_point(proc, journal, target)
            time.sleep(rng.uniform(*JITTER_S))
        if proc.poll() is not None:
            report.after_end += 1
            proc.communicate()
        else:
            proc.kill()
            proc.communicate()
        free_devices([f"camera{suffix}", f"rf{suffix}"], env["PREFECT_API_URL"])
        report.kills += 1
        if not _is_store(store):
            report.before_store += 1
            continue
        try:
            now = check_killed_store(store, reference, completed, suffix)
        except AssertionError:
            report.shots_lost += 1
            raise
        if 0 < len(now) < SHOTS:
            report.mid_run += 1
        report.states.append(store_state(store)["state"])
        completed = now
    if _is_store(store):
        if store_state(store)["state"] != "finished":
            run_to_end(["resume", str(store)], env)
    else:
        shutil.rmtree(store, ignore_errors=True)
        run_to_end(["run", str(spec), "--store", str(store)], env)
    report.final_resumes = 1
    final = open_sequence(store)
    assert final.attrs["state"] == "finished" and final.sizes["shot"] == SHOTS
    for name in COMPARED:
        np.testing.assert_array_equal(_named(final, suffix, name).values, reference[name].values, err_msg=name)
    return report


def reference_run(folder: Path, env: dict[str, str]) -> tuple[Path, xr.Dataset]:
    """An uninterrupted run of the spec through the CLI: the deterministic data to compare with."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = write_spec(folder)
    store = folder / "reference.zarr"
    run_to_end(["run", str(spec), "--store", str(store)], env)
    return spec, open_sequence(store).load()


def cli_env(api_url: str) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_LOGGING_LEVEL": "ERROR"}
