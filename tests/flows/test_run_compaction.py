"""Every end of a real run compacts its store (finished, failed, and after a resume), in the run's log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pytest
from _lab import lab_spec
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler

from flows.run import run_sequence
from flows.sequence import SequenceSpec
from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.usefixtures("prefect_server")


def run(spec: SequenceSpec, store: Path, **kwargs: Any) -> Any:
    return asyncio.run(run_sequence(spec, store=str(store), return_state=True, **kwargs))


def _sharded(store: Path, name: str) -> bool:
    meta = json.loads((store / name / "zarr.json").read_text())
    return bool(meta["codecs"][0]["name"] == "sharding_indexed")


async def _log_text(flow_run_id: UUID) -> str:
    """The flow run's log, read back from the Prefect server."""
    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


def test_a_finished_run_ends_compacted_and_says_so(tmp_path: Path) -> None:
    store = tmp_path / "scan.zarr"
    state = run(lab_spec(shots=6), store)
    assert state.is_completed(), state.message
    assert _sharded(store, "camera.atoms")
    assert sorted(p.name for p in (store / "camera.atoms").iterdir()) == ["0.0.0", "zarr.json"]
    assert open_sequence(store)["camera.atoms"].shape == (6, 16, 16)
    text = asyncio.run(_log_text(state.state_details.flow_run_id))
    assert f"compacted 1 array(s) of {store}: " in text and " files in " in text, text


def test_a_failed_run_is_compacted_and_its_resume_compacts_again(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    spec = lab_spec(shots=8, faults={"rf": {"fail_compile_shot": 3}}, execution={"lookahead": 1})
    assert run(spec, store).is_failed()
    assert store_state(store)["state"] == "failed" and _sharded(store, "camera.atoms")
    first = open_sequence(store)["camera.atoms"].values

    assert run(spec, store, resume=True).is_failed()  # the same fault stops it again: shots 0..2 kept
    ds = open_sequence(store)
    assert list(ds["shot"].values) == [0, 1, 2]
    assert _sharded(store, "camera.atoms")
    np.testing.assert_array_equal(ds["camera.atoms"].values, first)
