"""Running real shots of the simulated lab through ShotExchange, and every fault-injection switch."""

import json
import os
import time
from pathlib import Path

import anyio
import numpy as np
import pytest

from devices import DeviceError, DeviceTimeoutError, Shot, ShotCompilationError
from devices.sim import CameraConfig, RFSourceConfig, ScopeConfig, SequencerConfig, SimFaults

pytestmark = pytest.mark.anyio


def lab(instrument, sequence, faults: dict[str, SimFaults] | None = None):
    faults = faults or {}
    configs = {
        "seq": SequencerConfig(channels=["mot", "coil"], time_step="10 us", faults=faults.get("seq", SimFaults())),
        "cam": CameraConfig(detuning="detuning", faults=faults.get("cam", SimFaults())),
        "rf": RFSourceConfig(frequency="detuning", settle_time="1 ms", faults=faults.get("rf", SimFaults())),
        "scope": ScopeConfig(samples=500, source_lane="coil", faults=faults.get("scope", SimFaults())),
    }
    return [instrument(name, config, sequence) for name, config in configs.items()]


def read_journal(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_shot_of_the_whole_lab(instrument, sequence, run_shot, entered) -> None:
    instruments = entered(lab(instrument, sequence))
    start = anyio.current_time()
    data = await run_shot(instruments, Shot(4, {"detuning": 2e5}))
    assert anyio.current_time() - start >= 18e-3  # plays at least the shot duration
    assert sorted(data) == ["cam.atoms", "cam.background", "rf.frequency", "scope.trace", "seq.duration"]
    assert data["seq.duration"] == pytest.approx(18e-3)
    assert data["rf.frequency"] == 2e5
    assert data["cam.atoms"].dtype == np.uint16 and data["cam.atoms"].shape == (64, 64)
    assert data["cam.atoms"].sum() > data["cam.background"].sum()
    assert data["scope.trace"].dtype == np.float32 and data["scope.trace"].shape == (500,)
    again = await run_shot(instruments, Shot(4, {"detuning": 2e5}))
    for key in ("cam.atoms", "scope.trace"):
        np.testing.assert_array_equal(data[key], again[key])  # deterministic per shot index


async def test_the_journal_records_the_lifecycle(instrument, sequence, run_shot, tmp_path) -> None:
    journal = tmp_path / "journal.jsonl"
    faults = {name: SimFaults(journal=str(journal)) for name in ("seq", "cam", "rf", "scope")}
    instruments = lab(instrument, sequence, faults)
    with instruments[0].device, instruments[1].device, instruments[2].device, instruments[3].device:
        await run_shot(instruments, Shot(0, {"detuning": 0.0}))
    events = read_journal(journal)
    assert {e["pid"] for e in events} == {os.getpid()}
    for name in ("seq", "cam", "rf", "scope"):
        assert [e["event"] for e in events if e["device"] == name] == [
            "enter",
            "compile",
            "run_start",
            "run_end",
            "exit",
        ]
    assert {e["shot"] for e in events if e["event"] == "run_end"} == {0}


def test_fail_on_enter_and_enter_delay(instrument, sequence) -> None:
    cam = instrument("cam", CameraConfig(faults=SimFaults(fail_on_enter=True, enter_delay=0.05)), sequence)
    start = time.monotonic()
    with pytest.raises(DeviceError, match="fail_on_enter") as info:
        cam.device.__enter__()
    assert time.monotonic() - start >= 0.05 and info.value.device == "cam"


def test_fail_on_exit_still_records_the_exit(instrument, sequence, tmp_path) -> None:
    journal = tmp_path / "j.jsonl"
    rf = instrument(
        "rf", RFSourceConfig(frequency="1 MHz", faults=SimFaults(fail_on_exit=True, journal=str(journal))), sequence
    )
    with pytest.raises(DeviceError, match="fail_on_exit"), rf.device:
        pass
    assert [e["event"] for e in read_journal(journal)] == ["enter", "exit"]


def test_fail_compile_shot(instrument, sequence) -> None:
    seq = instrument("seq", SequencerConfig(channels=["mot"], faults=SimFaults(fail_compile_shot=2)), sequence)
    seq.compiler.compile_shot_parameters(Shot(1))
    with pytest.raises(ShotCompilationError) as info:
        seq.compiler.compile_shot_parameters(Shot(2))
    assert (info.value.shot_index, info.value.device) == (2, "seq")


async def test_fail_run_shot_raise_cancels_the_other_controllers(
    instrument, sequence, run_shot, entered, tmp_path
) -> None:
    journal = tmp_path / "j.jsonl"
    faults = {name: SimFaults(journal=str(journal)) for name in ("seq", "rf", "scope")}
    faults["cam"] = SimFaults(fail_run_shot=1, journal=str(journal))
    instruments = entered(lab(instrument, sequence, faults))
    await run_shot(instruments, Shot(0, {"detuning": 0.0}))
    with pytest.raises(ExceptionGroup) as info:
        await run_shot(instruments, Shot(1, {"detuning": 0.0}))
    (error,) = info.value.exceptions
    assert isinstance(error, DeviceError) and not error.retryable and error.device == "cam"
    shot_1 = {
        (e["device"], e["event"]) for e in read_journal(journal) if e["shot"] == 1 and e["event"].startswith("run_")
    }
    assert ("cam", "run_failed") in shot_1
    assert {("seq", "run_cancelled"), ("rf", "run_cancelled"), ("scope", "run_cancelled")} <= shot_1


async def test_fail_run_shot_hang_waits_until_cancelled(instrument, sequence, run_shot, entered) -> None:
    instruments = entered(lab(instrument, sequence, {"rf": SimFaults(fail_run_shot=0, run_fault="hang")}))
    with pytest.raises(TimeoutError):
        with anyio.fail_after(0.3):  # the engine's shot timeout
            await run_shot(instruments, Shot(0, {"detuning": 0.0}))


async def test_fail_run_shot_timeout_is_retryable_and_attempts_are_counted(
    instrument, sequence, run_shot, entered
) -> None:
    faults = {"scope": SimFaults(fail_run_shot=3, run_fault="timeout", fail_run_attempts=2)}
    instruments = entered(lab(instrument, sequence, faults))
    for attempt in (1, 2):
        with pytest.raises(ExceptionGroup) as info:
            await run_shot(instruments, Shot(3, {"detuning": 0.0}))
        (error,) = info.value.exceptions
        assert isinstance(error, DeviceTimeoutError) and error.retryable and f"attempt {attempt}" in str(error)
    data = await run_shot(instruments, Shot(3, {"detuning": 0.0}))  # third attempt succeeds
    assert "scope.trace" in data


async def test_block_loop_shot_blocks_the_event_loop(instrument, sequence, run_shot, entered) -> None:
    instruments = entered(lab(instrument, sequence, {"seq": SimFaults(block_loop_shot=0, block_loop_seconds=0.2)}))
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await anyio.sleep(0.001)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.01)
        await run_shot(instruments, Shot(0, {"detuning": 0.0}))
        tg.cancel_scope.cancel()
    assert max(np.diff(ticks)) >= 0.2


async def test_running_without_entering_fails(instrument, sequence, run_shot) -> None:
    rf = instrument("rf", RFSourceConfig(frequency="1 MHz"), sequence)
    with pytest.raises(ExceptionGroup) as info:
        await run_shot([rf], Shot(0))
    assert "before __enter__" in str(info.value.exceptions[0])


def test_faults_validation() -> None:
    with pytest.raises(ValueError):
        SimFaults(run_fault="explode")
    with pytest.raises(ValueError):
        SimFaults(enter_delay=-1)
