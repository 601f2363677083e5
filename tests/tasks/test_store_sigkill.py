"""SIGKILL the writing process at random moments: the store opens, completed shots are exact,
and resuming finishes the scan in the same store.

Writers are real processes forked from a "zygote" process that has imported ``tasks`` once, so
a trial does not pay the interpreter start-up.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import pytest
import xarray as xr
from store_helpers import SPEC_JSON, UNITS, ZYGOTE, assert_shots_exact, record

from tasks.records import SequenceState
from tasks.store import ShotStoreWriter, open_sequence, store_state

TRIALS = 12
SHOTS = 150
KILL_WINDOW_S = 0.3
"""Kill uniformly within this time after the writer opened the store (most kills land mid-scan)."""


class Zygote:
    """A process that imported ``tasks`` once and forks real writer processes on request."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def _receive(self) -> list[str]:
        assert self.process.stdout is not None
        return self.process.stdout.readline().split()

    def kill_at_random(self, path: Path, rng: random.Random, *, resume: bool, known: bool) -> None:
        """Fork a writer on ``path``, SIGKILL it at a random moment after it opened the store."""
        self._send("fork " + json.dumps([str(path), SHOTS, resume, known, 0.0, SPEC_JSON]))
        word, pid = self._receive()
        assert word == "ready", "child writer did not open the store"
        time.sleep(rng.uniform(0.0, KILL_WINDOW_S))
        os.kill(int(pid), signal.SIGKILL)
        self._send(f"reap {pid}")
        assert self._receive() == ["reaped", pid]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    """Started before the per-test leak check, stopped after the module's tests."""
    zygote = Zygote()
    yield zygote
    zygote.close()


def _check_crashed_store(path: Path) -> set[int]:
    """The store opens; every shot marked completed is bit-exact."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # leftover temp files are "not recognized" by zarr
        try:
            xr.open_zarr(path, consolidated=False)
        except ValueError as exc:  # killed within the milliseconds of resizing the arrays
            assert "conflicting sizes" in str(exc)
    everything = open_sequence(path, completed_only=False)
    completed = set(np.flatnonzero(everything["status"].values == 1).tolist())
    ds = open_sequence(path)
    assert set(ds["shot"].values.tolist()) == completed
    assert_shots_exact(ds, completed)
    assert store_state(path)["state"] in {"crashed", "finished"}
    return completed


async def _resume_in_process(path: Path, known: bool) -> None:
    async with ShotStoreWriter.open(
        path,
        spec_json=SPEC_JSON,
        expected_shots=SHOTS if known else None,
        parameter_units=UNITS,
        resume=True,
    ) as writer:
        for i in range(SHOTS):
            if i not in writer.completed:
                await writer.write(record(i))
        await writer.finish(SequenceState.FINISHED)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_leaves_exact_completed_shots_and_resume_finishes(tmp_path: Path, trial: int, zygote: Zygote) -> None:
    rng = random.Random(trial)
    known = trial % 2 == 0
    path = tmp_path / "scan.zarr"
    zygote.kill_at_random(path, rng, resume=False, known=known)
    completed = _check_crashed_store(path)
    if trial % 3 == 0:  # kill the resumed writer too, then resume once more
        zygote.kill_at_random(path, rng, resume=True, known=known)
        assert _check_crashed_store(path) >= completed
    anyio.run(_resume_in_process, path, known)
    ds = open_sequence(path)
    assert ds.attrs["state"] == "finished"
    assert list(ds["shot"].values) == list(range(SHOTS))
    assert_shots_exact(ds, range(SHOTS))
    assert not list(path.rglob("*.partial"))
