"""The end of a run is guarded: a store that cannot record the final state neither hides the run's own
error nor skips the rest of the cleanup (real run, real store, real fault: the store's group metadata
is replaced by a folder just before the store is finished)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from uuid import UUID

import anyio
import pytest
from _lab import events, lab_spec, read_journal
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler

from flows import SequenceFailedError
from flows.run import Progress, progress_listener, run_sequence
from flows.run._cleanup import Cleanup

pytestmark = pytest.mark.usefixtures("prefect_server")


async def _log_messages(flow_run_id: UUID) -> list[str]:
    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def _break_the_store(store: Path) -> None:
    """Make every later write of the group's attributes fail (works as root, unlike a read-only folder)."""
    metadata = store / "zarr.json"
    metadata.rename(store / "zarr.json.moved")
    metadata.mkdir()
    (metadata / "in-the-way").write_text("the store's metadata cannot be written here\n")


def test_a_failing_store_finish_keeps_the_runs_error_and_finishes_the_progress(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    store = tmp_path / "s.zarr"
    spec = lab_spec(
        shots=5,
        journal=journal,
        faults={"camera": {"fail_run_shot": 2, "fail_run_attempts": 1000}},
        execution={"retry": {"max_attempts": 1}},
    )
    seen: list[Progress] = []

    def on_progress(progress: Progress) -> None:
        if progress.phase == "failed" and not seen:
            _break_the_store(store)  # the verdict is in; the store is finished next
        if progress.phase == "failed":
            seen.append(progress)

    async def scenario() -> object:
        with progress_listener(on_progress):
            return await run_sequence(spec, store=str(store), return_state=True)

    state = asyncio.run(scenario())

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, SequenceFailedError), f"the run's error was replaced by {error!r}"
    assert error.result.state == "failed"
    assert error.result.error["device"] == "camera" and error.result.error["shot"] == 2
    assert "camera" in state.message

    final = [p for p in seen if p.state == "failed"]
    # one from the state update, one from the progress reporter's finish: both ran after finish() failed
    assert len(final) >= 2, f"the progress was not finished after the store failed: {seen}"
    assert final[-1].completed == 2 and final[-1].expected == 5

    messages = "\n".join(asyncio.run(_log_messages(state.state_details.flow_run_id)))
    assert "could not record the final state in the store" in messages

    entered = sorted(e["device"] for e in events(read_journal(journal), "enter"))
    assert entered == sorted(e["device"] for e in events(read_journal(journal), "exit"))

    shutil.rmtree(store / "zarr.json")
    (store / "zarr.json.moved").rename(store / "zarr.json")


def test_cleanup_runs_every_step_shielded_and_keeps_failures_in_order() -> None:
    ran: list[str] = []

    async def store() -> None:
        ran.append("store")
        raise OSError("disk full")

    async def progress() -> None:
        await anyio.sleep(0)  # a checkpoint inside the cancelled scope: shielded, so it runs
        ran.append("progress")

    def summary() -> None:
        ran.append("summary")
        raise RuntimeError("server gone")

    async def scenario() -> Cleanup:
        cleanup = Cleanup()
        cleanup.add("record the final state", store)
        cleanup.add("publish the progress", progress)
        cleanup.add("publish the summary", summary)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await cleanup.run()
        return cleanup

    cleanup = anyio.run(scenario)
    assert ran == ["store", "progress", "summary"]
    assert [what for what, _ in cleanup.failures] == ["record the final state", "publish the summary"]
    first = cleanup.first_failure
    assert isinstance(first, OSError) and first.__notes__ == [
        "then could not publish the summary: RuntimeError: server gone"
    ]
