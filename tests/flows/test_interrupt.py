"""Interrupting a running sequence: from the Prefect API, and Ctrl-C on the CLI; then resuming it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest
import yaml
from _lab import events, lab_spec, read_journal
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling
from simlab import SHOTFLOW, cancel_conclusion, log_lines, summary_artifact

from flows.run import run_sequence
from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.usefixtures("prefect_server")


def _completed(store: Path) -> int:
    try:
        return int((open_sequence(store)["status"] == 1).sum())
    except Exception:  # not created yet
        return 0


async def _running_flow_run_id(store: Path) -> str:
    """The running flow run that writes ``store``: the session's server also holds other
    tests' runs, some left running by a killed process."""
    async with get_client() as client:
        for _ in range(200):
            runs = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
                )
            )
            ours = [r for r in runs if r.parameters.get("store") == str(store)]
            if ours:
                return str(ours[0].id)
            await anyio.sleep(0.05)
    raise AssertionError(f"no running flow run writes {store}")


def _check_reads_as_a_cancel(lines: list[tuple[str, int]], *, by: str, at: int, kept: int, store: Path) -> str:
    """A cancelled run's log reads as a cancel (:func:`simlab.cancel_conclusion`), and its INFO line says
    who stopped it, at which shot, what was kept where and how to continue; returns that line."""
    conclusion = cancel_conclusion(lines)
    assert f"interrupted {by} at shot {at} of " in conclusion, conclusion
    assert f"{kept} shots kept in {store}" in conclusion and f"shotflow resume {store}" in conclusion, conclusion
    return conclusion


async def _task_run_states(flow_run_id: object) -> dict[str, StateType | None]:
    """The state of every task run of the flow run, by task run name, as the server holds it."""
    async with get_client() as client:
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.name: run.state_type for run in runs}


def _held_at(shot: int, release: Path) -> dict[str, dict[str, object]]:
    """Faults that hold the camera at ``shot`` until ``release`` exists: the test, not the
    clock, decides when the run is interrupted."""
    return {"camera": {"hold_shot": shot, "hold_until": str(release)}}


def test_cancel_through_the_prefect_api_then_resume(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    store = tmp_path / "s.zarr"
    release = tmp_path / "release"
    spec = lab_spec(shots=12, journal=journal, faults=_held_at(3, release), execution={"shot_timeout": "10 min"})

    async def scenario() -> object:
        async with anyio.create_task_group() as tg:
            states: list[object] = []

            async def run() -> None:
                states.append(await run_sequence(spec, store=str(store), return_state=True))

            tg.start_soon(run)
            flow_run_id = await _running_flow_run_id(store)
            while await anyio.to_thread.run_sync(_completed, store) < 3:  # shot 3 is held until cancelled
                await anyio.sleep(0.05)
            async with get_client() as client:
                await client.set_flow_run_state(flow_run_id, Cancelling(), force=True)
        return states[0]

    state = asyncio.run(scenario())
    assert state.is_cancelled(), state
    lines = asyncio.run(log_lines(state.state_details.flow_run_id))
    conclusion = _check_reads_as_a_cancel(lines, by="by a cancel from the Prefect UI or API", at=3, kept=3, store=store)
    assert state.message == conclusion
    assert conclusion in asyncio.run(summary_artifact(state.state_details.flow_run_id))
    tasks = asyncio.run(_task_run_states(state.state_details.flow_run_id))
    assert StateType.CANCELLED in tasks.values(), tasks  # the batch of the shot the cancel aborted
    assert set(tasks.values()) <= {StateType.COMPLETED, StateType.CANCELLED}, tasks

    info = store_state(store)
    assert info["state"] == "interrupted"
    kept = open_sequence(store)
    assert list(kept["shot"].values) == [0, 1, 2]
    journal_events = read_journal(journal)
    assert sorted(e["device"] for e in events(journal_events, "enter")) == sorted(
        e["device"] for e in events(journal_events, "exit")
    )

    # resume: the same store completes, and equals an uninterrupted run
    release.touch()
    resumed = asyncio.run(run_sequence(spec, store=str(store), resume=True, return_state=True))
    assert resumed.is_completed(), resumed.message
    fresh_state = asyncio.run(run_sequence(spec, store=str(tmp_path / "fresh.zarr"), return_state=True))
    assert fresh_state.is_completed()
    done, fresh = open_sequence(store), open_sequence(tmp_path / "fresh.zarr")
    assert done.sizes["shot"] == 12 and store_state(store)["state"] == "finished"
    np.testing.assert_array_equal(done["detuning"].values, fresh["detuning"].values)
    np.testing.assert_array_equal(done["camera.atoms"].values, fresh["camera.atoms"].values)
    np.testing.assert_array_equal(done["rf.frequency"].values, fresh["rf.frequency"].values)


def _cli_run_held(tmp_path: Path, terminal: dict[str, str]) -> tuple[subprocess.Popen[str], Path, Path]:
    """``shotflow run`` (the README's command, the local server) of a scan held at shot 2,
    in a process group of its own as in a terminal; returns once shots 0 and 1 are stored."""
    journal = tmp_path / "journal.jsonl"
    store = tmp_path / "s.zarr"
    spec = lab_spec(
        shots=30, journal=journal, faults=_held_at(2, tmp_path / "never"), execution={"shot_timeout": "10 min"}
    )
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    proc = subprocess.Popen(
        [SHOTFLOW, "run", str(spec_file), "--store", str(store)],
        env=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while _completed(store) < 2:  # shot 2 is held until the interrupt aborts it
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the run did not reach shot 2: {proc.communicate()}")
        time.sleep(0.1)
    return proc, store, journal


def _check_interrupted(proc: subprocess.Popen[str], store: Path, journal: Path) -> str:
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "sequence interrupted" in err, err
    assert store_state(store)["state"] == "interrupted"
    assert list(open_sequence(store)["shot"].values) == [0, 1]
    journal_events = read_journal(journal)
    assert sorted(e["device"] for e in events(journal_events, "enter")) == sorted(
        e["device"] for e in events(journal_events, "exit")
    )
    return err


def _terminal_api(terminal: dict[str, str], path: str, body: dict[str, object]) -> list[dict[str, object]]:
    """POST ``body`` to ``path`` of the terminal's local server's API."""
    port = json.loads((Path(terminal["PREFECT_HOME"]) / "shotflow-server.json").read_text())["port"]
    response = httpx.post(f"http://127.0.0.1:{port}/api{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def _check_cli_run_reads_as_a_cancel(terminal: dict[str, str], err: str, *, by: str, store: Path) -> None:
    """The log and the task runs of the flow run a ``shotflow`` command reported (``.../runs/flow-run/<id>``),
    on the terminal's local server: a cancel at shot 2 with shots 0 and 1 kept."""
    flow_run_id = err.split("/runs/flow-run/", 1)[1][:36]
    logs = _terminal_api(
        terminal, "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC"}
    )
    _check_reads_as_a_cancel([(e["message"], e["level"]) for e in logs], by=by, at=2, kept=2, store=store)
    tasks = _terminal_api(terminal, "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    states = {t["name"]: t["state_type"] for t in tasks}
    assert "CANCELLED" in states.values() and set(states.values()) <= {"COMPLETED", "CANCELLED"}, states


def test_ctrl_c_in_a_terminal_interrupts_at_once_and_keeps_completed_shots(
    tmp_path: Path, terminal: dict[str, str]
) -> None:
    proc, store, journal = _cli_run_held(tmp_path, terminal)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    err = _check_interrupted(proc, store, journal)
    assert "received SIGINT" in err
    assert "flow run '" in err and "/runs/flow-run/" in err, "the run did not say where to watch it"
    assert f"interrupted by Ctrl-C (received SIGINT) at shot 2 of 30: 2 shots kept in {store}" in err, err
    _check_cli_run_reads_as_a_cancel(terminal, err, by="by Ctrl-C (received SIGINT)", store=store)


def test_sigterm_with_the_server_gone_still_records_the_interrupt_and_exits(
    tmp_path: Path, terminal: dict[str, str]
) -> None:
    """A service manager stops everything at once: the run and the Prefect server."""
    proc, store, journal = _cli_run_held(tmp_path, terminal)
    server = json.loads((Path(terminal["PREFECT_HOME"]) / "shotflow-server.json").read_text())["pid"]
    os.kill(server, signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGTERM)
    err = _check_interrupted(proc, store, journal)
    assert "received SIGTERM" in err


def test_a_burst_of_ctrl_c_still_records_the_interrupt_and_every_completed_shot(
    tmp_path: Path, terminal: dict[str, str]
) -> None:
    """An impatient physicist: dozens of Ctrl-C, 30 ms apart, to the whole foreground group, while
    the run cleans up. The store must still end ``interrupted`` with every completed shot."""
    proc, store, journal = _cli_run_held(tmp_path, terminal)
    for _ in range(600):  # until the process is gone: the burst covers the whole cleanup
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            break
        time.sleep(0.03)  # the burst's rhythm, not a wait for the run: _check_interrupted waits on the process
    _check_interrupted(proc, store, journal)
    assert store_state(store)["completed_shots"] == 2


def test_sigterm_with_the_server_up_says_interrupted(tmp_path: Path, terminal: dict[str, str]) -> None:
    """A service manager's SIGTERM to the run alone: the CLI reports the interrupt (exit 130)."""
    proc, store, journal = _cli_run_held(tmp_path, terminal)
    os.killpg(proc.pid, signal.SIGTERM)
    err = _check_interrupted(proc, store, journal)
    assert "received SIGTERM" in err and "cannot be resolved" not in err, err
    _check_cli_run_reads_as_a_cancel(terminal, err, by="by SIGTERM (received SIGTERM)", store=store)
