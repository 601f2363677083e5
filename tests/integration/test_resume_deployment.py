"""The resume-sequence deployment on a real server and worker: a cancelled run continued from its store alone."""

from __future__ import annotations

from typing import Any

import pytest
from _deploy_lab import Lab
from test_deployments import journal_events, lab_spec, run, trigger, wait_final, wait_for_shots

from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.integration


def test_a_cancelled_deployment_run_resumes_from_the_resume_sequence_deployment(lab: Lab) -> None:
    journal = lab.results / "resume-me.jsonl"

    async def scenario() -> tuple[Any, Any, Any]:
        from prefect import get_client
        from prefect.states import Cancelling

        first = await trigger("run-sequence/run-sequence", spec=lab_spec("resume-me", journal, shots=20, load="150 ms"))
        await wait_for_shots(lab, journal, 3)
        async with get_client() as client:
            await client.set_flow_run_state(first.id, Cancelling())  # what the UI's "Cancel" does
        cancelled = await wait_final(lab, first.id)
        (store,) = (lab.results / "results" / "resume-me").glob("*.zarr")
        resumed = await trigger("resume-sequence/resume-sequence", store=str(store.relative_to(lab.results)))
        return cancelled, await wait_final(lab, resumed.id), store

    cancelled, resumed, store = run(scenario(), lab)
    assert cancelled.state.is_cancelled(), cancelled.state
    assert resumed.state.is_completed(), resumed.state
    assert resumed.name == f"resume resume-me/{store.name}", resumed.name
    info = store_state(store)
    assert info["state"] == "finished" and info["completed_shots"] == 20
    assert sorted(open_sequence(store)["shot"].values.tolist()) == list(range(20))  # every shot exactly once
    entries = journal_events(journal)
    camera_shots = [e for e in entries if e["event"] == "run_end" and e["device"] == "camera"]
    assert len(camera_shots) >= 20  # the interrupted shot ran again; none was skipped


def test_resuming_a_finished_store_is_refused_with_its_reason(lab: Lab) -> None:
    journal = lab.results / "resume-done.jsonl"

    async def scenario() -> Any:
        done = await trigger("run-sequence/run-sequence", spec=lab_spec("resume-done", journal, shots=2))
        assert (await wait_final(lab, done.id)).state.is_completed()
        (store,) = (lab.results / "results" / "resume-done").glob("*.zarr")
        refused = await trigger("resume-sequence/resume-sequence", store=str(store.relative_to(lab.results)))
        return await wait_final(lab, refused.id)

    refused = run(scenario(), lab)
    assert refused.state.is_failed()
    assert "is finished (2 shots); there is nothing to resume" in refused.state.message
