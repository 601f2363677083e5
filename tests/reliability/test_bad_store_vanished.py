"""A store deleted while a real run writes it fails the run, naming the store (issue 11, class 3a).
The run is held at a known shot by the simulated camera, the store folder really deleted, then
the run released: without the check zarr recreated the folders and the run ended ``finished``."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import pytest
from _rlab import lab_spec

from flows.run import run_sequence
from tasks.store import open_sequence

pytestmark = pytest.mark.usefixtures("prefect_server")


def _completed(store: Path) -> int:
    try:
        return int((open_sequence(store)["status"] == 1).sum())
    except Exception:  # not created yet
        return 0


def test_a_store_deleted_mid_run_fails_the_run_naming_the_store(tmp_path: Path) -> None:
    store, release = tmp_path / "s.zarr", tmp_path / "release"
    spec = lab_spec(shots=6, faults={"camera": {"hold_shot": 3, "hold_until": str(release)}})
    states: list[object] = []
    runner = threading.Thread(
        target=lambda: states.append(asyncio.run(run_sequence(spec, store=str(store), return_state=True)))
    )
    runner.start()
    try:
        held = threading.Event()
        while not held.wait(0.05):  # shots 0..2 durable, shot 3 held until released
            if _completed(store) >= 3 or not runner.is_alive():
                held.set()
        shutil.rmtree(store)
    finally:
        release.touch()
        runner.join(timeout=120)
    state = states[0]
    assert state.is_failed(), state  # type: ignore[attr-defined]
    assert str(store) in str(state.message) and "deleted" in str(state.message), state.message  # type: ignore[attr-defined]
