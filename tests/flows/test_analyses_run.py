"""Per-shot analyses in a real run: stored beside the data, equal to the analysis of the stored data.

Real Prefect (the session's embedded server), a real store and the simulated lab. A failing
analysis records NaN and ``ok`` False for its shots, says so in the flow run's log, and the
sequence still finishes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import anyio
import numpy as np
import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import StateType
from prefect.logging.handlers import APILogHandler
from prefect.states import Cancelling
from simlab import lab_dict, read_journal, run

from devices.analyses import Analysis, Gaussian2D, Output, register_analysis
from flows.run import run_sequence
from flows.sequence import SequenceSpec
from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.usefixtures("prefect_server")

SHOTS = 5


def _spec(analyses: dict[str, object]) -> SequenceSpec:
    spec = lab_dict(
        shots=SHOTS, devices=("sequencer", "camera", "rf", "scope"), overrides={"camera": {"roi": [24, 32]}}
    )
    return SequenceSpec.model_validate(spec | {"analyses": analyses})


async def _log(flow_run_id: object) -> str:
    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


def test_analyses_are_stored_per_shot_and_equal_the_analysis_of_the_stored_data(tmp_path: Path) -> None:
    spec = _spec(
        {
            "atoms": {"type": "roi_sum", "data": "camera.atoms", "roi": [2, 20, 4, 28]},
            "cloud": {"type": "gaussian_2d", "data": "camera.atoms"},
            "pulse": {"type": "peak", "data": "scope.trace"},
        }
    )
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_completed(), state.message
    ds = open_sequence(tmp_path / "s.zarr").load()
    assert ds.sizes["shot"] == SHOTS
    images = ds["camera.atoms"].values.astype("float64")
    np.testing.assert_array_equal(ds["analysis.atoms.sum"].values, images[:, 2:20, 4:28].sum(axis=(1, 2)))
    assert ds["analysis.atoms.ok"].values.all() and ds["analysis.pulse.ok"].values.all()
    fitter = Gaussian2D(data="camera.atoms")
    for shot in range(SHOTS):
        if not ds["analysis.cloud.ok"].values[shot]:
            assert np.isnan(ds["analysis.cloud.x"].values[shot])  # a shot with too few atoms to fit
            continue
        again = fitter.compute(images[shot])
        for field in ("x", "y", "sigma_x", "amplitude"):
            assert ds[f"analysis.cloud.{field}"].values[shot] == again[field]
    assert ds["analysis.cloud.ok"].values.sum() >= 1
    traces = ds["scope.trace"].values
    np.testing.assert_array_equal(ds["analysis.pulse.height"].values >= traces.max(axis=1) - 1e-9, True)


def test_a_failing_analysis_records_nan_logs_why_and_never_stops_the_sequence(tmp_path: Path) -> None:
    spec = _spec({"outside": {"type": "roi_sum", "data": "camera.atoms", "roi": [0, 500, 0, 4]}})
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_completed(), state.message
    ds = open_sequence(tmp_path / "s.zarr").load()
    assert ds.sizes["shot"] == SHOTS
    assert np.isnan(ds["analysis.outside.sum"].values).all()
    assert not ds["analysis.outside.ok"].values.any()
    log = asyncio.run(_log(state.state_details.flow_run_id))
    assert "analysis outside failed on shot 0 (values NaN)" in log and "does not fit in the image" in log, log
    assert "analysis outside failed on shot 3" not in log, "only the first failures are logged"
    assert f"outside on {SHOTS} of {SHOTS} shots" in log, log


class _Held(Analysis):
    """A test analysis that blocks its worker thread until the test releases it."""

    type: Literal["held_for_test"] = "held_for_test"

    def outputs(self) -> Mapping[str, Output]:
        return {"value": Output()}

    def compute(self, value: np.ndarray) -> Mapping[str, float]:
        assert _RELEASE.wait(timeout=300), "the test never released the analysis"
        return {"value": float(np.asarray(value).sum())}


_RELEASE = threading.Event()


def test_a_cancel_while_analyses_are_pending_still_stores_every_shot_that_ran(tmp_path: Path) -> None:
    """Shots 0-2 wait for their (held) analysis when the run is cancelled at shot 3: all three are kept."""
    register_analysis("held_for_test", _Held)
    journal, release_camera, store = tmp_path / "journal.jsonl", tmp_path / "never", tmp_path / "s.zarr"
    spec = SequenceSpec.model_validate(
        lab_dict(
            shots=8,
            journal=journal,
            faults={"camera": {"hold_shot": 3, "hold_until": str(release_camera)}},
            execution={"shot_timeout": "10 min"},
        )
        | {"analyses": {"slow": {"type": "held_for_test", "data": "camera.atoms"}}}
    )

    def camera_events(event: str) -> list[int]:
        return [e["shot"] for e in read_journal(journal) if e["event"] == event and e["device"] == "camera"]

    async def scenario() -> object:
        states: list[object] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                states.append(await run_sequence(spec, store=str(store), return_state=True))

            tg.start_soon(run)
            while 3 not in camera_events("held"):  # shots 0-2 ran; their analysis is held
                await anyio.sleep(0.05)
            async with get_client() as client:
                runs = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
                    )
                )
                ours = [r for r in runs if r.parameters.get("store") == str(store)]
                await client.set_flow_run_state(ours[0].id, Cancelling(), force=True)
            while 3 not in camera_events("run_cancelled"):  # the cancel reached the shots
                await anyio.sleep(0.05)
            _RELEASE.set()
        return states[0]

    try:
        state = asyncio.run(scenario())
    finally:
        _RELEASE.set()
    assert state.is_cancelled(), state
    assert store_state(store)["state"] == "interrupted"
    ds = open_sequence(store).load()
    assert list(ds["shot"].values) == [0, 1, 2]
    assert ds["analysis.slow.ok"].values.all()
    np.testing.assert_array_equal(ds["analysis.slow.value"].values, ds["camera.atoms"].values.sum(axis=(1, 2)))
