"""The flow run's log tells the story: shotflow's own messages reach it, Prefect's per-task noise does not.

Read back through the Prefect API (what the UI's Logs tab shows) after real runs on the
embedded server: a busy device waited for, a retried shot, a blocked event loop, a failed
compilation and a failing ``__exit__``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import pytest
from _lab import lab_spec
from prefect import flow, get_client, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.sorting import LogSort
from prefect.logging.handlers import APILogHandler
from prefect.variables import Variable

from flows.locks import device_lock
from flows.run import Progress, progress_listener, run_sequence
from flows.run._interrupts import Interrupt
from flows.run._run_log import quiet_interrupted_tasks, ship_run_logs

pytestmark = pytest.mark.usefixtures("prefect_server")


async def _log_lines(flow_run_id: UUID) -> list[tuple[str, int, UUID | None]]:
    """(message, level, task run) of every line of the flow run's log, in order."""
    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), sort=LogSort.TIMESTAMP_ASC
        )
    return [(log.message, log.level, log.task_run_id) for log in logs]


@asynccontextmanager
async def _held_until(devices: list[str], release: anyio.Event) -> AsyncIterator[None]:
    """Hold ``devices`` from a flow run of its own until ``release`` is set."""
    held = anyio.Event()

    @flow(name="hold-devices")
    async def hold_devices() -> None:
        async with device_lock(devices):
            held.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold_devices)
        await held.wait()
        yield


def test_the_log_shows_waits_retries_and_blocked_loops_but_no_task_noise(tmp_path: Path) -> None:
    spec = lab_spec(
        shots=4,
        faults={
            "rf": {"fail_run_shot": 1, "run_fault": "timeout", "fail_run_attempts": 1},
            "camera": {"block_loop_shot": 2, "block_loop_seconds": 0.3},
        },
    )
    release = anyio.Event()

    def on_progress(progress: Progress) -> None:
        if progress.phase.startswith("waiting for devices"):
            release.set()  # the run said it waits: let the holder go

    async def scenario() -> Any:
        with progress_listener(on_progress):
            async with _held_until(["rf"], release):
                return await run_sequence(spec, store=str(tmp_path / "s.zarr"), return_state=True)

    state = asyncio.run(scenario())
    assert state.is_completed(), state.message
    lines = asyncio.run(_log_lines(state.state_details.flow_run_id))
    text = "\n".join(message for message, _, _ in lines)
    assert "waiting for devices: device 'rf' is busy (held by flow run" in text
    assert "shot 1 attempt 1 failed, retrying" in text
    assert "device camera blocked the event loop" in text and "during shot 2" in text
    assert "holding devices" in text and "released devices" in text
    noise = [m for m, _, task_run in lines if task_run is not None and "Finished in state Completed" in m]
    assert noise == [], f"{len(noise)} per-task state lines in the flow run's log"


def test_the_log_says_why_compilation_failed_and_which_device_did_not_exit(tmp_path: Path) -> None:
    spec = lab_spec(shots=4, faults={"camera": {"fail_compile_shot": 2}, "rf": {"fail_on_exit": True}})
    state = asyncio.run(run_sequence(spec, store=str(tmp_path / "s.zarr"), return_state=True))
    assert state.is_failed()
    text = "\n".join(m for m, _, _ in asyncio.run(_log_lines(state.state_details.flow_run_id)))
    assert "compilation failed" in text and "shot 2" in text and "camera" in text
    assert "device rf failed to exit" in text


def test_no_holder_record_outlives_its_run(tmp_path: Path) -> None:
    state = asyncio.run(run_sequence(lab_spec(shots=2), store=str(tmp_path / "s.zarr"), return_state=True))
    assert state.is_completed(), state.message

    async def holder_records() -> dict[str, object]:
        names = [f"shotflow_device_holder_{device}" for device in ("sequencer", "camera", "rf")]
        return {name: await Variable.aget(name, default=None) for name in names}

    assert asyncio.run(holder_records()) == dict.fromkeys(
        ["shotflow_device_holder_sequencer", "shotflow_device_holder_camera", "shotflow_device_holder_rf"]
    )


def test_a_stopped_task_run_is_an_error_unless_the_run_was_interrupted() -> None:
    """The same stop of a running execute-shots task run: an ERROR (a crash) in a run that nobody
    interrupted, nothing above DEBUG once the run's interrupt was requested."""

    @task(name="execute-shots", task_run_name="execute-shot-{first}", cache_policy=NO_CACHE)
    async def execute_shots(first: int, started: anyio.Event) -> None:
        started.set()
        await anyio.sleep_forever()

    async def stop_one(first: int) -> None:
        """Start a task run, and cancel it once it runs."""
        started = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(execute_shots, first, started)
            await started.wait()
            tg.cancel_scope.cancel()

    @flow(name="stop-task-runs")
    async def stop_task_runs() -> None:
        ship_run_logs()
        await stop_one(0)  # nobody interrupted the run: a crash
        interrupt = Interrupt()
        with quiet_interrupted_tasks(interrupt):
            interrupt.request("received SIGTERM")
            await stop_one(1)

    state = asyncio.run(stop_task_runs(return_state=True))
    assert state.is_completed(), state.message
    lines = asyncio.run(_log_lines(state.state_details.flow_run_id))
    errors = [m for m, level, task_run in lines if level >= logging.ERROR and task_run is not None]
    assert any(m.startswith("Crash detected!") for m in errors), lines
    assert any(m.startswith("Finished in state Crashed") for m in errors), lines
    assert len(errors) == 2, lines  # those two, of the first task run only
