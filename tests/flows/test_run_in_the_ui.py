"""A run says what it is in the Prefect UI: named after its sequence and start time, tagged with its devices."""

from __future__ import annotations

import asyncio
import base64
import io
import re
from pathlib import Path

import matplotlib.image
import pytest
from _lab import lab_spec
from prefect import get_client
from simlab import summary_artifact

from flows.run import run_sequence

pytestmark = pytest.mark.usefixtures("prefect_server")


async def _flow_run(flow_run_id: object) -> object:
    async with get_client() as client:
        return await client.read_flow_run(flow_run_id)


def test_a_run_is_named_after_its_sequence_and_tagged_with_its_devices(tmp_path: Path) -> None:
    spec = lab_spec(shots=2, journal=tmp_path / "journal.jsonl")
    store = tmp_path / "s.zarr"
    state = asyncio.run(run_sequence(spec, store=str(store), return_state=True))
    assert state.is_completed(), state.message
    flow_run = asyncio.run(_flow_run(state.state_details.flow_run_id))
    assert re.fullmatch(re.escape(spec.name) + r" \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", flow_run.name), flow_run.name
    assert f"sequence:{spec.name}" in flow_run.tags
    assert {f"device:{d}" for d in spec.devices} <= set(flow_run.tags), flow_run.tags

    resumed = asyncio.run(run_sequence(spec, store=str(store), resume=True, return_state=True))
    assert asyncio.run(_flow_run(resumed.state_details.flow_run_id)).name.endswith(" (resume)")


async def _task_run_names(flow_run_id: object) -> list[str]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        return sorted(r.name for r in runs)


def test_task_runs_are_named_after_their_shots_and_parameters(tmp_path: Path) -> None:
    """One shot per task run (slow shots, and the first batch of auto): the shot and its detuning, with units."""
    spec = lab_spec(shots=3, execution={"shots_per_task": 1})
    state = asyncio.run(run_sequence(spec, store=str(tmp_path / "n.zarr"), return_state=True))
    assert state.is_completed(), state.message
    names = asyncio.run(_task_run_names(state.state_details.flow_run_id))
    for kind in ("compile", "execute"):
        assert f"{kind} shot 0 · detuning -2 MHz" in names, names
        assert f"{kind} shot 2 · detuning 2 MHz" in names, names
    batched = lab_spec(shots=3, execution={"shots_per_task": 2})
    state = asyncio.run(run_sequence(batched, store=str(tmp_path / "b.zarr"), return_state=True))
    names = asyncio.run(_task_run_names(state.state_details.flow_run_id))
    assert "execute shots 0-1 · from detuning -2 MHz" in names, names


def test_the_summary_shows_the_scan_and_how_to_open_the_store(tmp_path: Path) -> None:
    spec = lab_spec(shots=3, journal=tmp_path / "journal.jsonl")
    store = tmp_path / "s.zarr"
    state = asyncio.run(run_sequence(spec, store=str(store), return_state=True))
    assert state.is_completed(), state.message
    summary = asyncio.run(summary_artifact(state.state_details.flow_run_id))
    assert "# Sequence finished" in summary and "3 / 3" in summary
    assert "| detuning | 3 | Hz |" in summary, summary
    assert f"shotflow show {store}" in summary
    assert "## camera.atoms against detuning" in summary, summary[:2000]
    encoded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", summary)
    assert encoded, "the summary shows the final plot"
    assert matplotlib.image.imread(io.BytesIO(base64.b64decode(encoded.group(1))), format="png").ndim == 3


def test_a_failed_run_s_summary_names_the_error(tmp_path: Path) -> None:
    spec = lab_spec(shots=4, faults={"camera": {"fail_compile_shot": 2}})
    state = asyncio.run(run_sequence(spec, store=str(tmp_path / "s.zarr"), return_state=True))
    assert state.is_failed()
    summary = asyncio.run(summary_artifact(state.state_details.flow_run_id))
    assert "# Sequence failed" in summary and "| error |" in summary and "shot 2" in summary, summary[:2000]


async def _progress(flow_run_id: object) -> object:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

    async with get_client() as client:
        (artifact,) = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                type=ArtifactFilterType(any_=["progress"]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
        return artifact


def test_the_progress_card_says_which_shot_of_how_many(tmp_path: Path) -> None:
    spec = lab_spec(shots=4, journal=tmp_path / "journal.jsonl")
    state = asyncio.run(run_sequence(spec, store=str(tmp_path / "s.zarr"), return_state=True))
    assert state.is_completed(), state.message
    artifact = asyncio.run(_progress(state.state_details.flow_run_id))
    assert artifact.data == 100.0
    assert re.fullmatch(r"shot 4 of 4( · [\d.e+]+ shots/s)?", artifact.description), artifact.description


def test_the_progress_text_gives_the_rate_and_the_time_left() -> None:
    from flows.run._progress import progress_text

    assert progress_text(3, 41, None) == "shot 3 of 41"
    assert progress_text(12, 41, 2.5) == "shot 12 of 41 · 2.5 shots/s · ETA 0:00:12"
    assert progress_text(1, 7201, 1.0) == "shot 1 of 7201 · 1 shots/s · ETA 2:00:00"
    assert progress_text(41, 41, 2.5) == "shot 41 of 41 · 2.5 shots/s"
