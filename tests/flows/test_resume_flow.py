"""The resume-sequence flow: an interrupted store continued from its path alone; every refusal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import numpy as np
import pytest
from _lab import lab_spec
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelling

from flows.run import ResumeRefusedError, resume_sequence, run_sequence
from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.usefixtures("prefect_server")


def _completed(store: Path) -> int:
    try:
        return int((open_sequence(store)["status"] == 1).sum())
    except Exception:  # not created yet
        return 0


async def _running_flow_run_id(store: Path) -> str:
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


def _interrupted_store(root: Path, *, shots: int = 8, held_at: int = 3) -> Path:
    """A store of ``shots`` shots whose run was cancelled from Prefect with ``held_at`` shots kept."""
    store = root / "lab-test" / "interrupted.zarr"
    release = root / "release"
    spec = lab_spec(
        shots=shots,
        faults={"camera": {"hold_shot": held_at, "hold_until": str(release)}},
        execution={"shot_timeout": "10 min"},
    )

    async def scenario() -> object:
        states: list[object] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                states.append(await run_sequence(spec, store=str(store), return_state=True))

            tg.start_soon(run)
            flow_run_id = await _running_flow_run_id(store)
            while await anyio.to_thread.run_sync(_completed, store) < held_at:
                await anyio.sleep(0.05)
            async with get_client() as client:
                await client.set_flow_run_state(flow_run_id, Cancelling(), force=True)
        return states[0]

    state = asyncio.run(scenario())
    assert state.is_cancelled(), state  # type: ignore[attr-defined]
    assert store_state(store)["state"] == "interrupted"
    release.touch()  # the resumed run is not held
    return store


@pytest.fixture
def results_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SHOTFLOW_RESULTS_ROOT, as a deployment's job variables set it."""
    root = tmp_path / "results"
    root.mkdir()
    monkeypatch.setenv("SHOTFLOW_RESULTS_ROOT", str(root))
    return root


def test_an_interrupted_store_resumes_from_its_path_alone(results_root: Path) -> None:
    store = _interrupted_store(results_root)
    assert list(open_sequence(store)["shot"].values) == [0, 1, 2]

    state = asyncio.run(resume_sequence("lab-test/interrupted.zarr", return_state=True))

    assert state.is_completed(), state.message
    result = state.result()
    assert result.store == str(store) and result.completed_shots == 8
    done = open_sequence(store)
    assert sorted(done["shot"].values.tolist()) == list(range(8))  # every shot once
    assert store_state(store)["state"] == "finished"
    assert np.unique(done["detuning"].values).size == 8


def _refusal(store: str) -> str:
    state = asyncio.run(resume_sequence(store, return_state=True))
    assert state.is_failed(), state
    with pytest.raises(ResumeRefusedError) as refused:
        state.result()
    assert state.message == str(refused.value)
    return str(refused.value)


def test_a_finished_store_is_refused(results_root: Path) -> None:
    store = results_root / "done.zarr"
    assert asyncio.run(run_sequence(lab_spec(shots=2), store=str(store), return_state=True)).is_completed()
    before = sorted(p.relative_to(store) for p in store.rglob("*"))

    message = _refusal("done.zarr")

    assert message == "store: done.zarr is finished (2 shots); there is nothing to resume"
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before  # not touched


def test_a_missing_store_is_refused(results_root: Path) -> None:
    assert (
        _refusal("nowhere.zarr") == f"store: nowhere.zarr does not exist (looked for {results_root / 'nowhere.zarr'})"
    )


def test_a_folder_that_is_not_a_store_is_refused(results_root: Path) -> None:
    (results_root / "notes").mkdir()
    (results_root / "notes" / "readme.txt").write_text("not a store")

    message = _refusal("notes")

    assert message.startswith("store: notes cannot be resumed: ")
    assert "is not a readable zarr store" in message


def test_a_store_outside_the_results_root_is_refused(
    results_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "elsewhere.zarr"
    with monkeypatch.context() as terminal:  # written from a terminal, where no results root is set
        terminal.delenv("SHOTFLOW_RESULTS_ROOT")
        assert asyncio.run(run_sequence(lab_spec(shots=2), store=str(outside), return_state=True)).is_completed()

    for given in (str(outside), "../elsewhere.zarr"):
        assert _refusal(given) == f"store: {given} is outside the results folder {results_root}"
