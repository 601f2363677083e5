"""The store's lifecycle attributes: the state history, in-progress states after a kill, the scan axes,
and finish() recording exactly the verdict it is told (real zarr on disk)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from store_helpers import SPEC_JSON, UNITS, record

from tasks.records import SequenceState, decide_outcome
from tasks.store import (
    ShotStoreWriter,
    StoreError,
    StoreSpecMismatchError,
    describe_store,
    open_sequence,
    store_state,
)

pytestmark = pytest.mark.anyio

AXES = [{"name": "x", "size": 5, "unit": "mm", "values": [0.0, 0.25, 0.5, 0.75, 1.0]}, {"name": "repeat", "size": 2}]


def _open(path: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    options: dict[str, object] = {"spec_json": SPEC_JSON, "expected_shots": 10, "parameter_units": UNITS}
    options.update(kwargs)
    return ShotStoreWriter.open(path, **options)  # type: ignore[arg-type]


async def _until_state(path: Path, state: str) -> None:
    """Wait (off the event loop's way) until the store's recorded state is ``state``."""
    with anyio.fail_after(30):
        while (await anyio.to_thread.run_sync(store_state, path))["state"] != state:
            await anyio.sleep(0.01)


def _states(path: Path) -> list[str]:
    return [entry["state"] for entry in store_state(path)["history"]]


def _break_data_array(path: Path) -> None:
    """A regular file where the writer must create the ``camera.image`` array: its next shot fails."""
    (path / "camera.image").write_text("in the way")


async def _until_failed(writer: ShotStoreWriter) -> BaseException:
    with anyio.fail_after(30):
        while writer.failure is None:
            await anyio.sleep(0.01)
    return writer.failure


# --- record_state and the history ---------------------------------------------------------


async def test_record_state_keeps_a_history_that_ends_in_the_final_state(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    error = {"type": "CompileError", "message": "shot 3: bad expression"}
    async with _open(path) as writer:
        writer.record_state(SequenceState.INITIALIZING)
        await _until_state(path, "initializing")
        live = store_state(path)
        assert live["writer_alive"] is True
        assert "the run is initializing" in describe_store(path)
        writer.record_state(SequenceState.RUNNING)
        for i in range(3):
            await writer.write(record(i))
        writer.record_state(SequenceState.STOPPING)
        await _until_state(path, "stopping")
        assert store_state(path)["writer_alive"] is True
        assert list(open_sequence(path)["shot"].values) == [0, 1, 2]  # live metadata, shots before the state
        await writer.finish(SequenceState.FAILED, error)
    state = store_state(path)
    assert state["state"] == "failed"
    assert state["error"] == error
    assert _states(path) == ["running", "initializing", "running", "stopping", "failed"]
    times = [datetime.fromisoformat(entry["time"]) for entry in state["history"]]
    assert all(t.tzinfo == UTC for t in times)
    assert times == sorted(times)
    on_disk = open_sequence(path).attrs["history"]
    assert isinstance(on_disk, str)  # netCDF-safe: JSON text
    assert json.loads(on_disk) == state["history"]


async def test_record_state_waits_for_a_full_queue_and_is_recorded_by_finish(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    async with _open(path, max_pending=2) as writer:
        for i in range(3):
            try:
                writer.write_nowait(record(i))
            except StoreError:
                break
        writer.record_state(SequenceState.STOPPING)  # no await since: the worker thread has not run
        await writer.finish(SequenceState.INTERRUPTED, {"type": "Interrupted", "message": "interrupted: test"})
    assert _states(path) == ["running", "stopping", "interrupted"]


async def test_record_state_refuses_final_unknown_and_finished(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    async with _open(path) as writer:
        for final in (SequenceState.FINISHED, SequenceState.FAILED, "interrupted", SequenceState.CRASHED, "paused"):
            with pytest.raises(ValueError, match="finish|not a sequence state"):
                writer.record_state(final)  # type: ignore[arg-type]
        await writer.finish(SequenceState.FINISHED)
        with pytest.raises(StoreError, match="finished"):
            writer.record_state(SequenceState.RUNNING)
    assert _states(path) == ["running", "finished"]


async def test_resume_continues_the_history(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    async with _open(path) as writer:
        await writer.write(record(0))
        await writer.finish(SequenceState.INTERRUPTED, {"type": "Interrupted", "message": "interrupted: test"})
    async with _open(path, resume=True) as writer:
        writer.record_state(SequenceState.INITIALIZING)
        await writer.finish(SequenceState.FINISHED)
    assert _states(path) == ["running", "interrupted", "running", "initializing", "finished"]


# --- a writer killed in any in-progress state reads as crashed ----------------------------

_CHILD = textwrap.dedent(
    """
    import sys
    import anyio
    sys.path.insert(0, {helpers!r})
    from store_helpers import SPEC_JSON, UNITS, record
    from tasks.records import SequenceState
    from tasks.store import ShotStoreWriter, store_state

    async def main(path, state):
        async with ShotStoreWriter.open(path, spec_json=SPEC_JSON, expected_shots=10, parameter_units=UNITS) as writer:
            await writer.write(record(0))
            if state != "running":
                writer.record_state(SequenceState(state))
            while writer.pending or store_state(path)["state"] != state:
                await anyio.sleep(0.01)
            print("ready", flush=True)
            await anyio.sleep_forever()

    anyio.run(main, *sys.argv[1:])
    """
).format(helpers=str(Path(__file__).parent))


@pytest.fixture
def killed_writer(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A child process writing ``scan.zarr``; the test kills it, the fixture reaps it."""
    path = tmp_path / "scan.zarr"
    processes: list[subprocess.Popen[str]] = []

    def start(state: str) -> subprocess.Popen[str]:
        process = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), state], stdout=subprocess.PIPE, text=True)
        processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().split() == ["ready"], "the child writer did not record its state"
        return process

    yield start, path  # type: ignore[misc]
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


@pytest.mark.parametrize("state", ["initializing", "running", "stopping"])
def test_a_writer_killed_in_any_in_progress_state_reads_as_crashed(killed_writer, state: str) -> None:  # type: ignore[no-untyped-def]
    start, path = killed_writer
    process = start(state)
    live = store_state(path)
    assert (live["state"], live["writer_alive"]) == (state, True)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    after = store_state(path)
    assert (after["state"], after["writer_alive"]) == ("crashed", False)
    assert after["history"][-1]["state"] == state  # the history says where it died
    assert list(open_sequence(path)["shot"].values) == [0]  # read from the live metadata
    assert "died without finishing" in describe_store(path)


# --- axes ---------------------------------------------------------------------------------


async def test_axes_round_trip_and_resume_checks_them(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    async with _open(path, axes=AXES) as writer:
        assert store_state(path)["axes"] == AXES
        await writer.write(record(0))
        await writer.finish(SequenceState.INTERRUPTED, {"type": "Interrupted", "message": "interrupted: test"})
    assert store_state(path)["axes"] == AXES
    assert isinstance(open_sequence(path).attrs["axes"], str)  # netCDF-safe: JSON text
    other = [{**AXES[0], "size": 7}, AXES[1]]
    for wrong in (other, None):
        with pytest.raises(StoreSpecMismatchError, match="axes"):
            async with _open(path, axes=wrong, resume=True):
                pass
    async with _open(path, axes=tuple(AXES), resume=True) as writer:  # the same axes, as a tuple
        await writer.finish(SequenceState.FINISHED)
    assert store_state(path)["axes"] == AXES


async def test_a_store_without_axes_reads_none_and_takes_them_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    async with _open(path) as writer:
        await writer.finish(SequenceState.INTERRUPTED, {"type": "Interrupted", "message": "interrupted: test"})
    assert store_state(path)["axes"] is None
    assert "axes" not in open_sequence(path).attrs  # absent values are omitted
    async with _open(path, axes=AXES, resume=True) as writer:
        await writer.finish(SequenceState.FINISHED)
    assert store_state(path)["axes"] == AXES


@pytest.mark.parametrize(
    "axes",
    [{"name": "x"}, "x", [["x", 5]], [{1: "x"}], [{"name": "x", "step": float("nan")}], [{"name": object()}]],
)
async def test_axes_must_be_json_safe_mappings(tmp_path: Path, axes: object) -> None:
    path = tmp_path / "scan.zarr"
    with pytest.raises(TypeError, match="axes"):
        async with _open(path, axes=axes):
            pass
    assert not path.exists()  # refused before anything is created


# --- one verdict: finish records what it is told; writer.failure -------------------------


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (SequenceState.FINISHED, None),
        (SequenceState.INTERRUPTED, {"type": "Interrupted", "message": "interrupted: Ctrl-C"}),
        (SequenceState.FAILED, {"type": "TimeoutError", "message": "camera timed out", "shot": 1, "device": "camera"}),
    ],
)
async def test_finish_records_exactly_what_it_is_told(
    tmp_path: Path, state: SequenceState, error: dict[str, object] | None
) -> None:
    path = tmp_path / "scan.zarr"
    async with _open(path) as writer:
        await writer.write(record(0))
        await writer.finish(state, error)
        assert writer.failure is None
    recorded = store_state(path)
    assert (recorded["state"], recorded["error"]) == (str(state), error)


async def test_writer_failure_is_exposed_and_decided_by_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    async with _open(path) as writer:
        assert writer.failure is None
        _break_data_array(path)
        await writer.write(record(0))
        failure = await _until_failed(writer)
        with pytest.raises(StoreError, match="failed"):
            await writer.write(record(1))
        outcome = decide_outcome(None, store_failure=writer.failure)
        with pytest.raises(StoreError, match="failed") as raised:
            await writer.finish(outcome.state, outcome.error)
        assert raised.value.__cause__ is failure
    recorded = store_state(path)  # finish raised, but after recording the state
    assert recorded["state"] == "failed"
    assert recorded["error"]["message"] == f"results store writer failed: {failure}"
    assert _states(path) == ["running", "failed"]


async def test_finish_records_finished_as_told_even_after_a_writer_failure_and_raises(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    with pytest.raises(StoreError, match="failed"):
        async with _open(path) as writer:
            _break_data_array(path)
            await writer.write(record(0))
            await _until_failed(writer)
            await writer.finish(SequenceState.FINISHED)  # the caller's verdict, however wrong
    assert store_state(path)["state"] == "finished"


async def test_without_finish_the_writer_decides_on_its_own_failure(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    with pytest.raises(StoreError, match="failed"):
        async with _open(path) as writer:
            _break_data_array(path)
            await writer.write(record(0))
            failure = await _until_failed(writer)
    recorded = store_state(path)
    assert recorded["state"] == "failed"
    assert recorded["error"] == {"type": type(failure).__name__, "message": f"results store writer failed: {failure}"}


async def test_shots_that_fail_during_finish_turn_finished_into_failed(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    with pytest.raises(StoreError, match="failed"):
        async with _open(path, max_pending=4) as writer:
            _break_data_array(path)
            writer.write_nowait(record(0))  # queued, not written before finish: no await in between
            assert writer.failure is None
            await writer.finish(SequenceState.FINISHED)
    recorded = store_state(path)
    assert recorded["state"] == "failed"
    assert recorded["error"]["message"].startswith("results store writer failed: ")


async def test_finish_records_the_state_before_raising_that_it_could_not_consolidate(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    async with _open(path) as writer:
        await writer.write(record(0))
        (path / "junk").mkdir()
        (path / "junk" / "zarr.json").write_text("{ not json")  # consolidating the store fails on it
        with pytest.raises(StoreError, match="recorded interrupted but could not be finalized"):
            await writer.finish(SequenceState.INTERRUPTED, {"type": "Interrupted", "message": "interrupted: test"})
    recorded = store_state(path)
    assert (recorded["state"], recorded["error"]["type"]) == ("interrupted", "Interrupted")
    assert _states(path) == ["running", "interrupted"]
