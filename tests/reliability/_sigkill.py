"""SIGKILL trials of ``shotflow run`` / ``shotflow resume`` (shared by the test and the benchmark).

Every command is the user's: the ``shotflow`` executable, on the default configuration (no
``PREFECT_API_URL``: the local server that shotflow manages, one ``PREFECT_HOME`` shared by
every run). One *chain* per store: run, SIGKILL the command's whole process group at a random
moment (as a power cut or the OOM killer does), check the store, then a plain
``shotflow resume STORE`` (killed again a few times), and at the end a resume to completion,
compared with an uninterrupted reference run. Nothing is repaired by hand between a kill and
the next command: no lock is reset, no file deleted. Some kills also take the local Prefect
server down with the run (a power cut); the next command starts a new one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
import yaml
from _rlab import lab_dict
from simlab import SHOTFLOW

from tasks.store import open_sequence, store_state

SHOTS = 40
EARLY_KILLS = 0.2
"""Fraction of kills at a random moment of start-up (before or while the store is created)."""
EARLY_WINDOW_S = (0.0, 4.0)
JITTER_S = (0.0, 0.03)
"""The other kills land this long after the end of a random shot (from the sim journal)."""
SERVER_KILLS = 0.15
"""Fraction of kills that also kill the local Prefect server (a power cut)."""
COMPARED = ("camera.atoms", "rf.frequency", "detuning", "attempts", "status")
COMMAND_TIMEOUT = 300.0


@dataclass
class ChainReport:
    """What one chain of kills saw."""

    kills: int = 0
    mid_run: int = 0  # kills that landed with 0 < completed < SHOTS
    before_store: int = 0  # kills before the store existed
    after_end: int = 0  # the process had already finished
    server_kills: int = 0  # kills that took the local server down too
    states: list[str] = field(default_factory=list)
    shots_lost: int = 0  # completed shots that vanished or changed (must stay 0)
    resume_seconds: list[float] = field(default_factory=list)  # resume start -> its first shot
    takeovers: int = 0  # resumes that took over the devices of the killed run


def write_spec(folder: Path, shots: int = SHOTS, journal: Path | None = None, suffix: str = "") -> Path:
    spec = lab_dict(
        shots=shots, pulse="20 ms", devices=("camera", "rf"), name="sigkill", journal=journal, suffix=suffix
    )
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def shotflow(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``shotflow ARGS`` in a process group of its own (as a terminal does), stderr to ``log``."""
    with open(log, "ab") as err:
        return subprocess.Popen(
            [SHOTFLOW, *args], env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command and every process of its group (compile workers included)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def kill_local_server(env: dict[str, str]) -> bool:
    """SIGKILL the local Prefect server of ``env``'s PREFECT_HOME; False if none was running."""
    try:
        pid = json.loads((Path(env["PREFECT_HOME"]) / "shotflow-server.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, KeyError):
        return False
    return True


def run_to_end(args: list[str], env: dict[str, str], log: Path) -> None:
    proc = shotflow(args, env, log)
    assert proc.wait(timeout=COMMAND_TIMEOUT) == 0, log.read_text()[-3000:]


def _is_store(path: Path) -> bool:
    return (path / "zarr.json").exists()


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


def _journal(journal: Path) -> list[dict[str, object]]:
    try:
        return [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _shots_ended(journal: Path) -> int:
    try:
        return journal.read_bytes().count(b'"run_end"')
    except FileNotFoundError:
        return 0


def _first_shot_of(journal: Path, pid: int) -> float | None:
    """When process ``pid`` started its first shot (journal time), or None."""
    starts = [e["time"] for e in _journal(journal) if e["event"] == "run_start" and e["pid"] == pid]
    return float(min(starts)) if starts else None  # type: ignore[arg-type]


def _wait_then_kill_point(proc: subprocess.Popen[bytes], journal: Path, target: int) -> None:
    """Return once ``target`` shot ends are journaled (or the process ended)."""
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while _shots_ended(journal) < target and proc.poll() is None:
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.005)


def _check_resume_log(log: Path, since: int) -> bool:
    """A resume never waits for the killed run's devices; returns whether it took them over."""
    text = log.read_text(errors="replace")[since:]
    assert "waiting for devices" not in text, f"a resume waited for the killed run's devices:\n{text[-3000:]}"
    return "is taken over" in text


def chain(folder: Path, reference: xr.Dataset, env: dict[str, str], kills: int, seed: int) -> ChainReport:
    """``kills`` SIGKILLs on one store, each followed by a plain command; returns what happened.

    Most kills land a random few ms after the end of a random shot (read from the sim journal,
    whatever the machine's load); some land at a random moment of start-up, and some take the
    local Prefect server down too.
    """
    rng = random.Random(seed)
    store = folder / "s.zarr"
    journal = folder / "journal.jsonl"
    log = folder / "shotflow.log"
    suffix = f"_{seed}"
    spec = write_spec(folder, journal=journal, suffix=suffix)
    report = ChainReport()
    completed: set[int] = set()
    for _ in range(kills):
        offset = log.stat().st_size if log.exists() else 0
        resuming = _is_store(store)
        started = time.time()
        proc = shotflow(["resume", str(store)] if resuming else ["run", str(spec), "--store", str(store)], env, log)
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
        kill_group(proc)
        if rng.random() < SERVER_KILLS and kill_local_server(env):
            report.server_kills += 1
        report.kills += 1
        if resuming:
            report.takeovers += _check_resume_log(log, offset)
            first = _first_shot_of(journal, proc.pid)
            if first is not None:
                report.resume_seconds.append(first - started)
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
    offset = log.stat().st_size if log.exists() else 0
    if _is_store(store):
        if store_state(store)["state"] != "finished":
            run_to_end(["resume", str(store)], env, log)
            report.takeovers += _check_resume_log(log, offset)
    else:
        run_to_end(["run", str(spec), "--store", str(store)], env, log)
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
    run_to_end(["run", str(spec), "--store", str(store)], env, folder / "shotflow.log")
    return spec, open_sequence(store).load()
