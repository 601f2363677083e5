"""run_sequence against a real (embedded) Prefect server, real zarr stores and the simulated lab."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from _lab import events, lab_spec, read_journal

from flows.run import run_sequence
from flows.sequence import SequenceSpec
from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.usefixtures("prefect_server")


def run(spec: SequenceSpec, store: Path, **kwargs: Any) -> Any:
    """Run the flow to its final state (never raises for a failed run)."""
    return asyncio.run(run_sequence(spec, store=str(store), return_state=True, **kwargs))


def assert_devices_exited_once(journal: list[dict[str, Any]]) -> None:
    entered = sorted(e["device"] for e in events(journal, "enter"))
    exited = sorted(e["device"] for e in events(journal, "exit"))
    assert entered == exited, f"entered {entered}, exited {exited}"
    assert len(entered) == len(set(entered)), "a device was entered twice"


def test_successful_scan_stores_every_shot_in_order(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    spec = lab_spec(shots=6, journal=journal, devices=("sequencer", "camera", "rf", "scope"))
    state = run(spec, tmp_path / "scan.zarr")
    assert state.is_completed(), state.message
    result = state.result()
    assert result.state == "finished" and result.completed_shots == 6 and result.expected_shots == 6

    ds = xr.open_zarr(tmp_path / "scan.zarr")
    assert ds.sizes["shot"] == 6
    np.testing.assert_allclose(ds["detuning"].values, np.linspace(-2e6, 2e6, 6))
    assert ds["detuning"].attrs["units"] == "Hz"
    assert (ds["status"].values == 1).all()
    assert ds["camera.atoms"].shape == (6, 16, 16)
    np.testing.assert_allclose(ds["rf.frequency"].values, 80e6 + np.linspace(-2e6, 2e6, 6))
    assert ds["scope.trace"].shape == (6, 100)
    starts, ends = ds["start_time"].values, ds["end_time"].values
    assert (np.diff(starts) > np.timedelta64(0, "ns")).all() and (ends[:-1] <= starts[1:]).all(), (
        "shots overlapped or ran out of order"
    )
    assert ds.attrs["state"] == "finished"

    journal_events = read_journal(journal)
    assert_devices_exited_once(journal_events)
    runs = [e["shot"] for e in events(journal_events, "run_start", "camera")]
    assert runs == list(range(6))


def test_compile_error_lets_running_shot_finish_and_names_the_shot(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    spec = lab_spec(shots=8, journal=journal, faults={"rf": {"fail_compile_shot": 3}}, execution={"lookahead": 1})
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_failed()
    info = store_state(tmp_path / "s.zarr")
    assert info["state"] == "failed"
    assert info["error"]["shot"] == 3 and info["error"]["device"] == "rf"
    ds = open_sequence(tmp_path / "s.zarr")
    # lookahead 1: shot 3 compiles while shot 2 runs; shot 2 finishes and is stored, nothing after it
    assert list(ds["shot"].values) == [0, 1, 2]
    journal_events = read_journal(journal)
    assert max(e["shot"] for e in events(journal_events, "run_start")) == 2
    assert_devices_exited_once(journal_events)


def test_controller_error_aborts_shot_and_cancels_the_others(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    spec = lab_spec(
        shots=5,
        journal=journal,
        faults={"camera": {"fail_run_shot": 2, "fail_run_attempts": 1000}},
        pulse="200 ms",
        execution={"retry": {"max_attempts": 1}},
    )
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_failed()
    info = store_state(tmp_path / "s.zarr")
    assert info["error"]["device"] == "camera" and info["error"]["shot"] == 2
    ds = open_sequence(tmp_path / "s.zarr", completed_only=False)
    assert list(ds["status"].values[:3]) == [1, 1, 2]
    assert list(open_sequence(tmp_path / "s.zarr")["shot"].values) == [0, 1]
    journal_events = read_journal(journal)
    cancelled = {e["device"] for e in events(journal_events, "run_cancelled") if e["shot"] == 2}
    assert cancelled == {"sequencer", "rf"}, "the other controllers of the failed shot were not cancelled"
    assert not [e for e in events(journal_events, "run_end") if e["shot"] == 2]
    assert_devices_exited_once(journal_events)


def test_device_hanging_until_timeout(tmp_path: Path) -> None:
    spec = lab_spec(
        shots=3,
        faults={"rf": {"fail_run_shot": 1, "run_fault": "hang"}},
        execution={"shot_timeout": "0.5 s", "retry": {"max_attempts": 1}},
    )
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_failed()
    info = store_state(tmp_path / "s.zarr")
    assert info["error"]["shot"] == 1
    assert "did not finish within 0.5 s" in info["error"]["message"] and "rf" in info["error"]["message"]
    assert list(open_sequence(tmp_path / "s.zarr")["shot"].values) == [0]


def test_retry_succeeds_and_records_attempts(tmp_path: Path) -> None:
    spec = lab_spec(
        shots=3,
        faults={"camera": {"fail_run_shot": 1, "run_fault": "timeout", "fail_run_attempts": 1}},
        execution={"retry": {"max_attempts": 3}},
    )
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_completed(), state.message
    ds = open_sequence(tmp_path / "s.zarr")
    assert list(ds["attempts"].values) == [1, 2, 1]


def test_retry_exhaustion_fails_the_run(tmp_path: Path) -> None:
    spec = lab_spec(
        shots=3,
        faults={"camera": {"fail_run_shot": 1, "run_fault": "timeout", "fail_run_attempts": 10}},
        execution={"retry": {"max_attempts": 2}},
    )
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_failed()
    ds = open_sequence(tmp_path / "s.zarr", completed_only=False)
    assert int(ds["attempts"].values[1]) == 2 and int(ds["status"].values[1]) == 2
    assert "2 attempt" in store_state(tmp_path / "s.zarr")["error"]["message"]


def test_non_retryable_error_is_not_retried(tmp_path: Path) -> None:
    spec = lab_spec(
        shots=3,
        faults={"camera": {"fail_run_shot": 0, "run_fault": "raise", "fail_run_attempts": 1}},
        execution={"retry": {"max_attempts": 3, "retry_on": ["timeout"]}},
    )
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_failed()
    ds = open_sequence(tmp_path / "s.zarr", completed_only=False)
    assert int(ds["attempts"].values[0]) == 1


def test_enter_error_of_one_device_exits_the_others(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    spec = lab_spec(shots=3, journal=journal, faults={"rf": {"fail_on_enter": True}, "camera": {"enter_delay": 0.2}})
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_failed()
    journal_events = read_journal(journal)
    assert {e["device"] for e in events(journal_events, "enter")} == {"sequencer", "camera"}
    assert_devices_exited_once(journal_events)
    assert not events(journal_events, "run_start")
    info = store_state(tmp_path / "s.zarr")
    assert info["state"] == "failed" and "rf" in info["error"]["message"]


def test_exit_error_is_reported_and_other_devices_still_exit(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    spec = lab_spec(shots=3, journal=journal, faults={"camera": {"fail_on_exit": True}})
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_failed()
    journal_events = read_journal(journal)
    assert_devices_exited_once(journal_events)
    info = store_state(tmp_path / "s.zarr")
    assert "camera" in info["error"]["message"] and "exit" in info["error"]["message"]
    assert info["completed_shots"] == 3


def test_device_not_used_is_neither_entered_nor_run(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    spec = lab_spec(shots=2, journal=journal, camera_lane="no-such-lane")
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_completed(), state.message
    journal_events = read_journal(journal)
    assert "camera" not in {e["device"] for e in journal_events}
    assert not [v for v in xr.open_zarr(tmp_path / "s.zarr").data_vars if str(v).startswith("camera.")]


def test_lookahead_bounds_compilation(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    lookahead = 2
    spec = lab_spec(shots=10, journal=journal, pulse="30 ms", execution={"lookahead": lookahead})
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_completed(), state.message
    compiled_so_far: set[int] = set()
    checked = 0
    for event in read_journal(journal):
        if event["event"] == "compile":
            compiled_so_far.add(event["shot"])
        elif event["event"] == "run_start" and event["device"] == "camera":
            ahead = max(compiled_so_far) - event["shot"]
            assert ahead <= lookahead, f"compiled {ahead} shots ahead of shot {event['shot']}"
            checked += 1
    assert checked == 10


def test_batched_execution_gives_the_same_results(tmp_path: Path) -> None:
    one = run(lab_spec(shots=6), tmp_path / "one.zarr")
    three = run(lab_spec(shots=6, execution={"shots_per_task": 3, "lookahead": 2}), tmp_path / "three.zarr")
    assert one.is_completed() and three.is_completed()
    a, b = open_sequence(tmp_path / "one.zarr"), open_sequence(tmp_path / "three.zarr")
    np.testing.assert_array_equal(a["camera.atoms"].values, b["camera.atoms"].values)
    np.testing.assert_array_equal(a["detuning"].values, b["detuning"].values)


def test_the_store_records_every_transition_and_the_scan_axes(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    spec = lab_spec(shots=4, journal=journal)
    store = tmp_path / "scan.zarr"
    assert run(spec, store).is_completed()
    info = store_state(store)
    states = [entry["state"] for entry in info["history"]]
    assert states[-3:] == ["initializing", "running", "finished"], states
    assert info["state"] == "finished"
    times = [entry["time"] for entry in info["history"]]
    assert times == sorted(times)
    (axis,) = info["axes"]
    assert axis["name"] == "detuning" and axis["size"] == 4 and axis["unit"] == "Hz"


def test_a_compile_error_records_stopping_before_failed(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    spec = lab_spec(shots=6, journal=journal, faults={"sequencer": {"fail_compile_shot": 3}})
    store = tmp_path / "scan.zarr"
    assert run(spec, store).is_failed()
    states = [entry["state"] for entry in store_state(store)["history"]]
    assert states[-3:] == ["running", "stopping", "failed"], states
