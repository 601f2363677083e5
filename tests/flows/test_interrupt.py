"""Interrupting a running sequence: from the Prefect API, and Ctrl-C on the CLI; then resuming it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import numpy as np
import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL
from prefect.states import Cancelling

from flows import run_sequence
from tasks import open_sequence, store_state

from _lab import events, lab_spec, read_journal

pytestmark = pytest.mark.usefixtures("prefect_server")


def _completed(store: Path) -> int:
    try:
        return int((open_sequence(store)["status"] == 1).sum())
    except Exception:  # not created yet
        return 0


async def _running_flow_run_id() -> str:
    async with get_client() as client:
        for _ in range(200):
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
                )
            )
            if runs:
                return str(runs[0].id)
            await anyio.sleep(0.05)
    raise AssertionError("no running flow run found")


def test_cancel_through_the_prefect_api_then_resume(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    store = tmp_path / "s.zarr"
    spec = lab_spec(shots=12, journal=journal, pulse="150 ms")

    async def scenario() -> object:
        async with anyio.create_task_group() as tg:
            states: list[object] = []

            async def run() -> None:
                states.append(await run_sequence(spec, store=str(store), return_state=True))

            tg.start_soon(run)
            flow_run_id = await _running_flow_run_id()
            while _completed(store) < 2:
                await anyio.sleep(0.05)
            async with get_client() as client:
                await client.set_flow_run_state(flow_run_id, Cancelling(), force=True)
        return states[0]

    state = asyncio.run(scenario())
    assert state.is_cancelled(), state
    info = store_state(store)
    assert info["state"] == "interrupted"
    kept = open_sequence(store)
    assert 2 <= kept.sizes["shot"] < 12
    assert list(kept["shot"].values) == list(range(kept.sizes["shot"]))
    journal_events = read_journal(journal)
    assert sorted(e["device"] for e in events(journal_events, "enter")) == sorted(
        e["device"] for e in events(journal_events, "exit")
    )

    # resume: the same store completes, and equals an uninterrupted run
    resumed = asyncio.run(run_sequence(spec, store=str(store), resume=True, return_state=True))
    assert resumed.is_completed(), resumed.message
    fresh_state = asyncio.run(run_sequence(spec, store=str(tmp_path / "fresh.zarr"), return_state=True))
    assert fresh_state.is_completed()
    done, fresh = open_sequence(store), open_sequence(tmp_path / "fresh.zarr")
    assert done.sizes["shot"] == 12 and store_state(store)["state"] == "finished"
    np.testing.assert_array_equal(done["detuning"].values, fresh["detuning"].values)
    np.testing.assert_array_equal(done["camera.atoms"].values, fresh["camera.atoms"].values)
    np.testing.assert_array_equal(done["rf.frequency"].values, fresh["rf.frequency"].values)


def test_ctrl_c_on_the_cli_interrupts_and_keeps_completed_shots(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    store = tmp_path / "s.zarr"
    spec = lab_spec(shots=30, journal=journal, pulse="150 ms")
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows._cli", "run", str(spec_file), "--store", str(store)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _completed(store) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert store_state(store)["state"] == "interrupted"
    assert 2 <= open_sequence(store).sizes["shot"] < 30
    journal_events = read_journal(journal)
    assert sorted(e["device"] for e in events(journal_events, "enter")) == sorted(
        e["device"] for e in events(journal_events, "exit")
    )
