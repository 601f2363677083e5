"""Real kills of a compacting process: after writing alongside, after the switch, mid-delete, on the
second array, and as soon as the side folder appears. After each the store opens complete (plain
xarray and ``open_sequence``), every shot equals its value before, and compacting again finishes.

The child process compacts with a progress callback that, at the chosen step, creates a marker
file and blocks; the test waits for the marker, then kills the process (SIGKILL on POSIX,
TerminateProcess on Windows): the kill lands at a known point, no sleep is guessed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import anyio
import numpy as np
import pytest
import xarray as xr
from store_helpers import assert_shots_exact, record, write_store

from tasks.store import compact_store, open_sequence, store_state

SHOTS = 40
WAIT_S = 120.0
"""Upper bound for the child to reach its kill point (it takes well under a second)."""

CHILD = """
import sys, threading
from pathlib import Path
from tasks.store import compact_store
path, marker, array, phase, done = sys.argv[1:]

def progress(step):
    if step.array == array and step.phase == phase and step.done >= int(done):
        Path(marker).write_text("reached")
        threading.Event().wait()  # until killed

compact_store(path, progress=progress)
"""


def _values(path: Path) -> dict[str, bytes]:
    ds = open_sequence(path)
    return {name: np.ascontiguousarray(ds[name].values).tobytes() for name in ds.variables}


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], *, may_end: bool = False) -> None:
    """Wait until ``condition()`` holds (polling the filesystem); fail if the child exits first,
    unless ``may_end``."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if process.poll() is not None:
            assert may_end, "the compaction ended before reaching its kill point"
            return
        assert time.monotonic() < deadline, "the compaction did not reach its kill point"
        time.sleep(0.001)


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait(timeout=30)


def _check_complete(path: Path, before: dict[str, bytes]) -> None:
    with warnings.catch_warnings():  # killed mid-compaction: no consolidated metadata, xarray says so
        warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated metadata")
        xr.open_zarr(path).load()  # plain xarray
    assert _values(path) == before
    assert_shots_exact(open_sequence(path), range(SHOTS))
    assert store_state(path)["state"] == "finished"


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    path = tmp_path / "s.zarr"
    anyio.run(lambda: write_store(path, [record(i) for i in range(SHOTS)], expected_shots=SHOTS))
    return path, _values(path)


@pytest.mark.parametrize(
    ("array", "phase", "done"),
    [
        ("camera.image", "copied", SHOTS),  # written alongside and verified, not moved in
        ("camera.image", "switched", SHOTS),  # the new zarr.json in place, old chunks all there
        ("camera.image", "deleted", SHOTS // 4),  # a quarter of the old chunks deleted
        ("scope.trace", "deleted", SHOTS // 2),  # the first array done, the second mid-delete
    ],
    ids=["after-writing-alongside", "after-the-switch", "mid-delete", "second-array-mid-delete"],
)
def test_killed_at_a_step_the_store_stays_complete_and_compaction_finishes(
    store: tuple[Path, dict[str, bytes]], tmp_path: Path, array: str, phase: str, done: int
) -> None:
    path, before = store
    marker = tmp_path / "reached"
    process = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(marker), array, phase, str(done)])
    try:
        _wait_for(marker.exists, process)
    finally:
        _kill(process)
    _check_complete(path, before)

    report = compact_store(path)
    assert (array in report.arrays) == (phase == "copied")  # once switched, only leftovers remain
    _check_complete(path, before)
    for name, shard in {"camera.image": "0.0.0", "scope.trace": "0.0"}.items():
        assert sorted(p.name for p in (path / name).iterdir()) == [shard, "zarr.json"], name
    assert "consolidated_metadata" in json.loads((path / "zarr.json").read_text())


def test_killed_as_soon_as_the_side_folder_appears(store: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    """No pause: the kill lands wherever the child is once ``.rewrite/zarr.json`` exists."""
    path, before = store
    side = path / "camera.image" / ".rewrite" / "zarr.json"
    process = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(tmp_path / "never"), "", "", "0"])
    try:
        _wait_for(side.exists, process, may_end=True)  # a loaded machine may miss the window
    finally:
        _kill(process)
    _check_complete(path, before)
    compact_store(path)
    _check_complete(path, before)
    assert not (path / "camera.image" / ".rewrite").exists()
