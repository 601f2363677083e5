"""Concurrency: two sequences on disjoint devices at once, and a controller blocking the event loop.

Both sequences run as ``run_sequence`` flows in one event loop (an anyio task group), each on
its own devices (``camera_a``/``rf_a`` and ``camera_b``/``rf_b``: separate hardware locks)
and its own journal and store. Hardware locks serialise shared devices only, so the two runs
overlap in time: some shot of one starts before a shot of the other has ended (the stores'
start and end times), and each store holds exactly its own data.

A controller that blocks the event loop (sim ``block_loop_shot``) stalls every coroutine of
the process, the other sequence's included. It is reported (a warning on ``tasks.engine._loop_watch``
naming the device and the shot), and nothing stays stalled: the other device of that shot and
the other sequence complete.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import zarr
from _rlab import assert_exited_exactly_once, events, lab_spec, read_journal

from flows.run import run_sequence
from flows.sequence import SequenceSpec
from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.usefixtures("prefect_server")

SHOTS = {"_a": 60, "_b": 12}
"""Run _a is long enough to cover _b's start-up, even when _b's flow-run creation is retried."""
PULSE = "100 ms"
START_TIMEOUT = 60.0
"""Seconds allowed for run _a to complete its first shot."""


def _spec(tmp_path: Path, suffix: str, faults: dict[str, dict[str, Any]] | None = None) -> SequenceSpec:
    return lab_spec(
        shots=SHOTS[suffix],
        devices=("camera", "rf"),
        pulse=PULSE,
        journal=tmp_path / f"journal{suffix}.jsonl",
        name=f"concurrent{suffix}",
        suffix=suffix,
        faults=faults,
        execution={"shots_per_task": 10},
    )


async def _run_both(specs: dict[str, SequenceSpec], tmp_path: Path) -> dict[str, Any]:
    """Run _a, and _b once _a has completed its first shot, in one task group.

    Starting both at the same instant makes the two flow-run creations collide on the
    embedded server's SQLite database: one gets HTTP 503 and the Prefect client retries it
    after about 2 s, which could let _a finish before _b starts.
    """
    states: dict[str, Any] = {}

    async def one(suffix: str) -> None:
        store = tmp_path / f"s{suffix}.zarr"
        states[suffix] = await run_sequence(specs[suffix], store=str(store), return_state=True)

    async def first_shot_done(suffix: str) -> None:
        journal = tmp_path / f"journal{suffix}.jsonl"
        with anyio.fail_after(START_TIMEOUT):
            while not events(await anyio.to_thread.run_sync(read_journal, journal), "run_end"):
                await anyio.sleep(0.02)

    async with anyio.create_task_group() as group:
        group.start_soon(one, "_a")
        await first_shot_done("_a")
        group.start_soon(one, "_b")
    return states


def _check_run(tmp_path: Path, suffix: str) -> tuple[np.ndarray, np.ndarray]:
    """The run finished with all its shots and its own devices' data; return its shot intervals."""
    store = tmp_path / f"s{suffix}.zarr"
    info = store_state(store)
    assert info["state"] == "finished", info
    shots = SHOTS[suffix]
    assert info["completed_shots"] == shots
    ds = open_sequence(store)
    assert ds["shot"].values.tolist() == list(range(shots))
    detuning = np.linspace(-2e6, 2e6, shots)
    np.testing.assert_allclose(ds["detuning"].values, detuning)
    np.testing.assert_allclose(ds[f"rf{suffix}.frequency"].values, 80e6 + detuning)
    images = ds[f"camera{suffix}.atoms"].values
    assert images.shape == (shots, 8, 8)
    assert (images.reshape(shots, -1).max(axis=1) > 0).all()
    assert not any(name.endswith("_b" if suffix == "_a" else "_a") for name in ds.data_vars), list(ds.data_vars)
    journal = read_journal(tmp_path / f"journal{suffix}.jsonl")
    assert assert_exited_exactly_once(journal) == {f"camera{suffix}", f"rf{suffix}"}
    group = zarr.open_group(str(store), mode="r")
    return np.asarray(group["start_time"][:]), np.asarray(group["end_time"][:])


def _overlapping_pairs(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> int:
    """How many (shot of a, shot of b) pairs ran at the same time."""
    (start_a, end_a), (start_b, end_b) = a, b
    return int(((start_a[:, None] < end_b[None, :]) & (start_b[None, :] < end_a[:, None])).sum())


def _blocked_ms(warning: str) -> float:
    found = re.search(r"blocked the event loop for (\d+) ms", warning)
    assert found, warning
    return float(found.group(1))


def test_two_sequences_on_disjoint_devices_run_at_once(tmp_path: Path) -> None:
    specs = {suffix: _spec(tmp_path, suffix) for suffix in ("_a", "_b")}
    states = anyio.run(_run_both, specs, tmp_path)
    for suffix, state in states.items():
        assert state.is_completed(), f"{suffix}: {state.message}"
    intervals = {suffix: _check_run(tmp_path, suffix) for suffix in specs}
    overlaps = _overlapping_pairs(intervals["_a"], intervals["_b"])
    assert overlaps > 0, "the two sequences ran one after the other, not at once"


def test_blocked_event_loop_is_reported_and_stalls_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """rf_a blocks the loop for 0.3 s during shot 30, while _b runs; camera_a's shot 30 and run _b complete."""
    caplog.set_level(logging.WARNING, logger="tasks.engine._loop_watch")
    blocked = 30
    specs = {
        "_a": _spec(tmp_path, "_a", faults={"rf": {"block_loop_shot": blocked, "block_loop_seconds": 0.3}}),
        "_b": _spec(tmp_path, "_b"),
    }
    states = anyio.run(_run_both, specs, tmp_path)
    for suffix, state in states.items():
        assert state.is_completed(), f"{suffix}: {state.message}"

    warnings = [r.getMessage() for r in caplog.records if r.name == "tasks.engine._loop_watch"]
    long_blocks = [w for w in warnings if _blocked_ms(w) >= 250]
    assert any("device rf_a blocked the event loop" in w and f"during shot {blocked};" in w for w in long_blocks), (
        warnings
    )
    # shorter reports can come from CPU starvation on a loaded machine; the 0.3 s one names rf_a only
    assert all("device rf_a " in w for w in long_blocks), long_blocks

    for suffix in specs:
        _check_run(tmp_path, suffix)
    journal = read_journal(tmp_path / "journal_a.jsonl")
    ended = [e["shot"] for e in events(journal, "run_end", "camera_a")]
    assert blocked in ended, "the other device of the blocked shot never finished it"
    assert not events(journal, "run_cancelled") and not events(journal, "run_failed")
