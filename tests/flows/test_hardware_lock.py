"""Hardware locks: two runs that share a device never overlap (embedded Prefect server, simulated lab)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from _lab import events, lab_spec, read_journal
from prefect import flow, get_client

from flows.locks import device_limit_name, device_lock
from flows.run import run_sequence
from flows.sequence import SequenceSpec

pytestmark = pytest.mark.usefixtures("prefect_server")


def _span(journal: Path) -> tuple[float, float]:
    """Time the run's first device entered and its last device exited."""
    entries = read_journal(journal)
    enters, exits = events(entries, "enter"), events(entries, "exit")
    assert enters and len(exits) == len(enters), f"devices not entered and exited: {entries}"
    return min(e["time"] for e in enters), max(e["time"] for e in exits)


async def _run(spec: SequenceSpec, store: Path, **kwargs: Any) -> Any:
    return await run_sequence(spec, store=str(store), return_state=True, **kwargs)


async def _slots(device: str) -> int:
    async with get_client() as client:
        return (await client.read_global_concurrency_limit_by_name(device_limit_name(device))).active_slots


def test_two_runs_sharing_devices_never_overlap(tmp_path: Path) -> None:
    first_journal, second_journal = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first = lab_spec(shots=4, pulse="100 ms", journal=first_journal)
    second = lab_spec(shots=4, pulse="100 ms", journal=second_journal)

    async def both() -> list[Any]:
        return await asyncio.gather(_run(first, tmp_path / "a.zarr"), _run(second, tmp_path / "b.zarr"))

    states = asyncio.run(both())
    assert all(s.is_completed() for s in states), [s.message for s in states]
    a, b = sorted([_span(first_journal), _span(second_journal)])
    assert a[1] <= b[0], f"the runs overlapped: first {a}, second {b}"
    assert asyncio.run(_slots("camera")) == 0, "the device lock was not released"


@asynccontextmanager
async def _held(devices: list[str]) -> AsyncIterator[None]:
    """Hold ``devices`` from a flow run of its own until the block ends (no race with a clock)."""
    held, release = anyio.Event(), anyio.Event()

    @flow(name="hold-devices")
    async def hold_devices() -> None:
        async with device_lock(devices):
            held.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold_devices)
        await held.wait()
        try:
            yield
        finally:
            release.set()


def test_fail_fast_names_the_busy_device_and_its_run(tmp_path: Path) -> None:
    journal = tmp_path / "b.jsonl"
    refused_spec = lab_spec(
        shots=2, journal=journal, execution={"device_lock": "fail"}, devices=("camera", "sequencer")
    )

    async def while_held() -> Any:
        async with _held(["camera", "rf", "sequencer"]):
            return await _run(refused_spec, tmp_path / "b.zarr")

    refused = asyncio.run(while_held())
    assert refused.is_failed()
    message = refused.message
    assert "DeviceBusyError" in message
    assert "device 'camera' is busy" in message and "device 'sequencer' is busy" in message
    assert "held by flow run" in message, message
    assert not read_journal(journal), "the refused run touched a device"
    assert not (tmp_path / "b.zarr").exists(), "a refused run creates no store"


def test_wait_timeout_fails_with_the_busy_device(tmp_path: Path) -> None:
    spec = lab_spec(shots=2, execution={"device_lock": "wait", "device_lock_timeout": 0.5}, devices=("rf",))

    async def while_held() -> Any:
        async with _held(["rf"]):
            return await _run(spec, tmp_path / "b.zarr")

    refused = asyncio.run(while_held())
    assert refused.is_failed()
    message = refused.message
    assert "device_lock_timeout" in message and "device 'rf' is busy" in message
    assert not (tmp_path / "b.zarr").exists(), "a refused run creates no store"
    assert asyncio.run(_slots("rf")) == 0, "the holder's lock was not released"


def test_lock_is_released_when_a_run_fails(tmp_path: Path) -> None:
    failing = lab_spec(shots=2, faults={"rf": {"fail_on_enter": True}})
    assert asyncio.run(_run(failing, tmp_path / "a.zarr")).is_failed()
    after = lab_spec(shots=2, execution={"device_lock": "fail"})
    state = asyncio.run(_run(after, tmp_path / "b.zarr"))
    assert state.is_completed(), state.message


def test_devices_held_by_a_killed_process_on_this_host_are_taken_over(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import anyio, sys\n"
            "from flows.locks import device_lock\n"
            "async def main():\n"
            "    async with device_lock(['rf']):\n"
            "        print('held', flush=True)\n"
            "        await anyio.sleep(600)\n"
            "anyio.run(main)\n",
        ],
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    spec = lab_spec(shots=2, devices=("rf",), execution={"device_lock": "fail"})
    state = asyncio.run(_run(spec, tmp_path / "s.zarr"))
    assert state.is_completed(), state.message  # not refused: the dead holder's lock was revoked
    assert asyncio.run(_slots("rf")) == 0
