"""Every fault-injection switch of the simulated instruments, at the first, a middle and the last shot.

After each run: the store's state and error (shot index, device, cause), the exact set of
completed shots (none missing, none partial: status, data and parameters agree), and every
entered device exited exactly once (the sim journal). Light devices (camera, RF source) keep
each run at about a second; one case runs the sequencer, whose compilation is in worker processes.

A compile error at shot ``n`` (DESIGN.md section 1): the shot running when it happens finishes and
is stored, none starts after it, shots compiled ahead are discarded. With lookahead 1 shot ``n``
compiles while shot ``n-1`` runs, so exactly ``0..n-1`` complete; with a larger lookahead the
completed shots are ``0..k-1`` for some ``k <= n``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from _rlab import assert_exited_exactly_once, events, lab_spec, read_journal, run

from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.usefixtures("prefect_server")

SHOTS = 5
POSITIONS = (0, 2, SHOTS - 1)  # first, middle, last shot
LIGHT = ("camera", "rf")


def _check_store(store: Path, expected_completed: set[int], *, state: str) -> xr.Dataset:
    """State, and exactly ``expected_completed`` complete (status, data and parameters agree)."""
    info = store_state(store)
    assert info["state"] == state, info
    assert info["completed_shots"] == len(expected_completed)
    everything = open_sequence(store, completed_only=False)
    status = everything["status"].values
    completed = set(np.flatnonzero(status == 1).tolist())
    assert completed == expected_completed
    ds = open_sequence(store)
    assert set(ds["shot"].values.tolist()) == expected_completed
    if expected_completed:  # every completed shot is whole: data present, parameters right
        assert not np.isnan(ds["rf.frequency"].values).any()
        np.testing.assert_allclose(ds["detuning"].values, np.linspace(-2e6, 2e6, SHOTS)[sorted(expected_completed)])
        np.testing.assert_allclose(ds["rf.frequency"].values, 80e6 + ds["detuning"].values)
        if "camera.atoms" in ds:
            assert (ds["camera.atoms"].values.reshape(len(expected_completed), -1).max(axis=1) > 0).all()
    xr.open_zarr(store)  # plain xarray opens it too
    return everything


def _run_case(tmp_path: Path, faults: dict[str, dict[str, Any]], devices: tuple[str, ...] = LIGHT, **execution: Any):
    journal = tmp_path / "journal.jsonl"
    store = tmp_path / "s.zarr"
    spec = lab_spec(shots=SHOTS, journal=journal, faults=faults, devices=devices, execution=execution)
    state = run(spec, store)
    return state, store, read_journal(journal)


def _assert_error(store: Path, *, shot: int | None, device: str, cause: str) -> dict[str, Any]:
    error = store_state(store)["error"]
    assert error is not None
    if shot is not None:
        assert error.get("shot") == shot, error
        assert f"shot {shot}" in error["message"], error
    assert device in error["message"] or error.get("device") == device, error
    assert cause in error["message"] or cause in error.get("cause", ""), error
    return error


# --- device lifetime ------------------------------------------------------------------------


def test_fail_on_enter_exits_the_entered_devices_and_runs_nothing(tmp_path: Path) -> None:
    state, store, journal = _run_case(tmp_path, {"rf": {"fail_on_enter": True}, "camera": {"enter_delay": 0.05}})
    assert state.is_failed()
    _check_store(store, set(), state="failed")
    _assert_error(store, shot=None, device="rf", cause="fail_on_enter")
    assert assert_exited_exactly_once(journal) == {"camera"}
    assert not events(journal, "run_start")


def test_fail_on_exit_is_reported_and_every_shot_kept(tmp_path: Path) -> None:
    state, store, journal = _run_case(tmp_path, {"camera": {"fail_on_exit": True}})
    assert state.is_failed()
    _check_store(store, set(range(SHOTS)), state="failed")
    _assert_error(store, shot=None, device="camera", cause="fail_on_exit")
    assert assert_exited_exactly_once(journal) == set(LIGHT)


def test_slow_enter_still_runs_every_shot(tmp_path: Path) -> None:
    state, store, journal = _run_case(tmp_path, {"camera": {"enter_delay": 0.3}, "rf": {"enter_delay": 0.1}})
    assert state.is_completed(), state.message
    _check_store(store, set(range(SHOTS)), state="finished")
    assert assert_exited_exactly_once(journal) == set(LIGHT)


# --- compilation ----------------------------------------------------------------------------


@pytest.mark.parametrize("lookahead", [1, 8])
@pytest.mark.parametrize("shot", POSITIONS)
def test_compile_error_stops_after_the_running_shot(tmp_path: Path, shot: int, lookahead: int) -> None:
    state, store, journal = _run_case(tmp_path, {"rf": {"fail_compile_shot": shot}}, lookahead=lookahead)
    assert state.is_failed()
    completed = _completed_prefix(store)
    if lookahead == 1:
        assert completed == shot, f"lookahead 1: shots 0..{shot - 1} complete, got {completed}"
    assert completed <= shot
    _check_store(store, set(range(completed)), state="failed")
    _assert_error(store, shot=shot, device="rf", cause="fail_compile_shot")
    ran = max((e["shot"] for e in events(journal, "run_start")), default=-1)
    assert ran == completed - 1, f"shot {ran} started after the compile error stopped the sequence"
    assert assert_exited_exactly_once(journal) == set(LIGHT)


def _completed_prefix(store: Path) -> int:
    """The number of completed shots, checking that they are the first ones."""
    shots = [int(i) for i in open_sequence(store)["shot"].values]
    assert shots == list(range(len(shots))), f"completed shots are not a prefix: {shots}"
    return len(shots)


def test_compile_error_in_a_worker_process(tmp_path: Path) -> None:
    """The sequencer compiles in worker processes: its error still names shot and device."""
    state, store, journal = _run_case(
        tmp_path, {"sequencer": {"fail_compile_shot": 2}}, devices=("sequencer", "rf"), lookahead=8, compile_workers=2
    )
    assert state.is_failed()
    completed = _completed_prefix(store)
    assert completed <= 2
    _check_store(store, set(range(completed)), state="failed")
    _assert_error(store, shot=2, device="sequencer", cause="fail_compile_shot")
    assert assert_exited_exactly_once(journal) == {"sequencer", "rf"}


# --- execution --------------------------------------------------------------------------------


RUN_CASES = [(shot, 1) for shot in POSITIONS] + [(2, 8)]


@pytest.mark.parametrize(("shot", "lookahead"), RUN_CASES)
def test_controller_error_fails_that_shot_and_stops(tmp_path: Path, shot: int, lookahead: int) -> None:
    state, store, journal = _run_case(
        tmp_path, {"camera": {"fail_run_shot": shot, "run_fault": "raise"}}, lookahead=lookahead
    )
    assert state.is_failed()
    everything = _check_store(store, set(range(shot)), state="failed")
    assert int(everything["status"].values[shot]) == 2, "the failed shot is marked failed"
    assert int(everything["attempts"].values[shot]) == 1, "a plain device error is not retried by default"
    _assert_error(store, shot=shot, device="camera", cause="fail_run_shot")
    assert {e["device"] for e in events(journal, "run_cancelled") if e["shot"] == shot} <= {"rf"}
    assert not [e for e in events(journal, "run_start") if e["shot"] > shot]
    assert assert_exited_exactly_once(journal) == set(LIGHT)


@pytest.mark.parametrize("shot", POSITIONS)
def test_hanging_device_times_out_and_stops(tmp_path: Path, shot: int) -> None:
    state, store, journal = _run_case(
        tmp_path,
        {"rf": {"fail_run_shot": shot, "run_fault": "hang"}},
        shot_timeout="0.2 s",
        retry={"max_attempts": 2},
    )
    assert state.is_failed()
    everything = _check_store(store, set(range(shot)), state="failed")
    assert int(everything["attempts"].values[shot]) == 2
    error = _assert_error(store, shot=shot, device="rf", cause="did not finish within 0.2 s")
    assert "2 attempt" in error["message"]
    assert assert_exited_exactly_once(journal) == set(LIGHT)


@pytest.mark.parametrize("shot", POSITIONS)
def test_device_timeout_retries_then_gives_up(tmp_path: Path, shot: int) -> None:
    state, store, journal = _run_case(
        tmp_path, {"rf": {"fail_run_shot": shot, "run_fault": "timeout"}}, retry={"max_attempts": 3}
    )
    assert state.is_failed()
    everything = _check_store(store, set(range(shot)), state="failed")
    assert int(everything["attempts"].values[shot]) == 3 and int(everything["status"].values[shot]) == 2
    _assert_error(store, shot=shot, device="rf", cause="instrument did not answer")
    assert len([e for e in events(journal, "run_start", "rf") if e["shot"] == shot]) == 3
    assert assert_exited_exactly_once(journal) == set(LIGHT)


@pytest.mark.parametrize("shot", POSITIONS)
def test_retry_succeeds_and_records_the_attempts(tmp_path: Path, shot: int) -> None:
    state, store, journal = _run_case(
        tmp_path,
        {"camera": {"fail_run_shot": shot, "run_fault": "timeout", "fail_run_attempts": 1}},
        retry={"max_attempts": 3},
    )
    assert state.is_completed(), state.message
    ds = _check_store(store, set(range(SHOTS)), state="finished")
    assert ds["attempts"].values.tolist() == [2 if i == shot else 1 for i in range(SHOTS)]
    assert assert_exited_exactly_once(journal) == set(LIGHT)


@pytest.mark.parametrize("shot", POSITIONS)
def test_blocked_event_loop_is_reported_and_the_run_completes(
    tmp_path: Path, shot: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tasks.engine._loop_watch")
    state, store, journal = _run_case(tmp_path, {"rf": {"block_loop_shot": shot, "block_loop_seconds": 0.15}})
    assert state.is_completed(), state.message
    _check_store(store, set(range(SHOTS)), state="finished")
    warnings = [r.getMessage() for r in caplog.records if r.name == "tasks.engine._loop_watch"]
    assert any("device rf blocked the event loop" in w and f"shot {shot}" in w for w in warnings), warnings
    assert not any("device camera" in w for w in warnings), "the blocking device must be the one named"
    assert assert_exited_exactly_once(journal) == set(LIGHT)
