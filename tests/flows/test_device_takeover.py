"""A device lock never outlives its holder: which holders are taken over, and which are waited for.

Each test builds, through the real Prefect API of the embedded server, the state a run leaves
when it holds a device: the limit's slot taken with a lease and its holder record. The holder
is then made dead in one of the ways a lab meets (its host stopped renewing, its flow run
ended) or left alive, and a run asks for the device with ``device_lock: fail``, which never
waits: it either takes the device over at once or is refused.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prefect import flow, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.states import Running
from prefect.variables import Variable

from flows._errors import DeviceBusyError
from flows.locks import device_limit_name, device_lock

pytestmark = pytest.mark.usefixtures("prefect_server")


def _device() -> str:
    return f"takeover-{uuid.uuid4().hex[:8]}"


async def _hold_elsewhere(device: str, **record: Any) -> None:
    """Take ``device``'s slot as a run on another host would, with its holder record."""
    async with get_client() as client:
        await client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=device_limit_name(device), limit=1)
        )
        response = await client.increment_concurrency_slots_with_lease(
            names=[device_limit_name(device)], slots=1, mode="concurrency", lease_duration=60
        )
    now = datetime.now(UTC)
    holder = {
        "lease_id": response.json()["lease_id"],
        "host": "another-lab-pc",
        "pid": 4242,
        "pid_started": 0.0,
        "since": (now - timedelta(hours=1)).isoformat(timespec="seconds"),
        "renewed": now.isoformat(timespec="seconds"),
        "flow_run": None,
        "flow_run_name": None,
    } | record
    await Variable.aset(f"shotflow_device_holder_{device.replace('-', '_')}", holder, overwrite=True)


async def _slots(device: str) -> int:
    async with get_client() as client:
        return (await client.read_global_concurrency_limit_by_name(device_limit_name(device))).active_slots


async def _take(device: str) -> None:
    async with device_lock([device], mode="fail"):
        assert await _slots(device) == 1


def test_a_holder_on_another_host_that_stopped_renewing_is_taken_over(caplog: pytest.LogCaptureFixture) -> None:
    device = _device()
    stale = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")

    async def scenario() -> None:
        await _hold_elsewhere(device, renewed=stale)
        with caplog.at_level(logging.WARNING, logger="flows"):
            await _take(device)

    asyncio.run(scenario())
    assert asyncio.run(_slots(device)) == 0
    assert "has not renewed its hold" in caplog.text and "is taken over" in caplog.text


def test_a_holder_whose_flow_run_ended_is_taken_over(caplog: pytest.LogCaptureFixture) -> None:
    device = _device()

    @flow(name="ended-holder")
    def ended() -> str:
        from prefect.runtime import flow_run

        return str(flow_run.id)

    async def scenario() -> None:
        run_id = ended()
        await _hold_elsewhere(device, flow_run=run_id, flow_run_name="ended-holder")
        with caplog.at_level(logging.WARNING, logger="flows"):
            await _take(device)

    asyncio.run(scenario())
    assert "its flow run ended (Completed)" in caplog.text


def test_a_live_holder_on_another_host_is_never_taken_over() -> None:
    device = _device()

    async def scenario() -> str:
        async with get_client() as client:
            run = await client.create_flow_run(flow(name="live-holder")(lambda: None), state=Running())
        await _hold_elsewhere(device, flow_run=str(run.id), flow_run_name=run.name)
        with pytest.raises(DeviceBusyError) as refused:
            await _take(device)
        return str(refused.value)

    message = asyncio.run(scenario())
    assert f"device '{device}' is busy (held by flow run" in message and "another-lab-pc" in message
    assert asyncio.run(_slots(device)) == 1


def test_the_lock_of_a_killed_local_process_is_released_through_its_lease() -> None:
    """Same host, dead pid, and a server that still knows the lease: the lease is released
    (never left to expire later onto the next holder)."""
    device = _device()

    async def scenario() -> None:
        await _hold_elsewhere(device, host=socket.gethostname(), pid=2**22 + 17)  # beyond Linux's pid_max
        await _take(device)

    asyncio.run(scenario())
    assert asyncio.run(_slots(device)) == 0
