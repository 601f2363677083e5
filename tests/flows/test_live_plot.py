"""The live plot: the spec's ``live_plot`` variable, redrawn on the flow run's Artifacts tab while the scan runs.

A real run on the session's embedded server, held at shot 3 by the simulated camera until
the test has seen the plot of the first three shots; then it runs to the end, and the same
artifact (updated in place, not one per update) shows every shot.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import anyio
import matplotlib.image
import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from pydantic import ValidationError
from simlab import lab_dict

from flows.run import run_sequence
from flows.sequence import SequenceSpec

pytestmark = pytest.mark.usefixtures("prefect_server")

SHOTS = 6
_RUNNING = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])))


async def _live_artifacts(flow_run_id: object) -> list[Any]:
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return [a for a in artifacts if str(a.data or "").startswith("### camera.atoms against")]


def _png_of(markdown: str) -> Any:
    encoded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert encoded, markdown[:200]
    return matplotlib.image.imread(io.BytesIO(base64.b64decode(encoded.group(1))), format="png")


def test_the_live_plot_follows_the_scan_and_is_one_artifact_updated_in_place(tmp_path: Path) -> None:
    release = tmp_path / "release"
    spec = SequenceSpec.model_validate(
        lab_dict(shots=SHOTS, faults={"camera": {"hold_shot": 3, "hold_until": str(release)}})
        | {"live_plot": {"data": "camera.atoms", "every": 2}}
    )
    store = tmp_path / "s.zarr"

    async def scenario() -> tuple[object, str, list[Any]]:
        states: list[Any] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                states.append(await run_sequence(spec, store=str(store), return_state=True))

            tg.start_soon(run)
            async with get_client() as client:
                with anyio.fail_after(120):
                    while True:  # the run's flow run, then its live plot of the shots before the held one
                        running = await client.read_flow_runs(flow_run_filter=_RUNNING)
                        runs = [r for r in running if r.parameters.get("store") == str(store)]
                        live = await _live_artifacts(runs[0].id) if runs else []
                        if live:
                            break
                        await anyio.sleep(0.2)
            first = str(live[0].data)
            release.touch()
        return states[0], first, await _live_artifacts(states[0].state_details.flow_run_id)

    state, first, final = anyio.run(scenario)
    assert state.is_completed(), state.message
    assert first.startswith("### camera.atoms against detuning: 3 shots"), first[:80]
    assert _png_of(first).ndim == 3
    assert len(final) == 1, "one live-plot artifact, updated in place"
    assert str(final[0].data).startswith(f"### camera.atoms against detuning: {SHOTS} shots")
    assert _png_of(str(final[0].data)).ndim == 3


@pytest.mark.parametrize(
    ("live_plot", "problem"),
    [
        ({"data": "cam.atoms"}, "live_plot.data: no device 'cam'"),
        ({"data": "analysis.atoms.sum"}, "live_plot.data: no analysis 'atoms'"),
        ({"data": "camera"}, "is not '<device>.<label>'"),
        ({"data": "camera.atoms", "every": 0.1}, "every"),
    ],
)
def test_a_bad_live_plot_is_refused_naming_the_field(live_plot: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        SequenceSpec.model_validate(lab_dict(shots=2) | {"live_plot": live_plot})
    assert problem in str(refused.value), str(refused.value)
