"""execution.shots_per_task 'auto': the same results as one shot per task, with fewer Prefect task runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pytest
from _lab import events, lab_spec, read_journal

from flows.run import run_sequence
from flows.sequence import SequenceSpec
from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.usefixtures("prefect_server")

FAST = {"pulse": "0.1 ms", "devices": ("sequencer", "camera", "rf")}
"""Short shots (~2 ms): auto batching grows well past one shot per task."""

TIMING = {"start_time", "end_time"}


def run(spec: SequenceSpec, store: Path) -> Any:
    return asyncio.run(run_sequence(spec, store=str(store), return_state=True))


async def _task_runs(flow_run_id: UUID) -> int:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    count, offset = 0, 0
    async with get_client() as client:
        while True:
            page = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200, offset=offset
            )
            count += len(page)
            offset += 200
            if len(page) < 200:
                return count


def task_runs(state: Any, *, expected: int | None = None, patience: float = 60) -> int:
    """Task runs the server recorded for the flow run of ``state``, once it has caught up.

    Polls until ``expected`` are recorded, or (without ``expected``) until two reads agree.
    """
    flow_run_id = state.state_details.flow_run_id
    deadline = time.monotonic() + patience
    previous = -1
    while True:
        count = asyncio.run(_task_runs(flow_run_id))
        if (count == expected if expected is not None else count == previous) or time.monotonic() > deadline:
            return count
        previous = count
        time.sleep(0.5)


def test_auto_is_the_default() -> None:
    assert lab_spec().execution.shots_per_task == "auto"


def test_auto_stores_the_same_shots_as_one_per_task_with_fewer_task_runs(tmp_path: Path) -> None:
    shots = 40
    one = run(lab_spec(shots=shots, execution={"shots_per_task": 1}, **FAST), tmp_path / "one.zarr")
    auto = run(lab_spec(shots=shots, execution={"shots_per_task": "auto"}, **FAST), tmp_path / "auto.zarr")
    assert one.is_completed(), one.message
    assert auto.is_completed(), auto.message

    a, b = open_sequence(tmp_path / "one.zarr"), open_sequence(tmp_path / "auto.zarr")
    assert set(a.data_vars) == set(b.data_vars)
    np.testing.assert_array_equal(a["shot"].values, np.arange(shots))
    np.testing.assert_array_equal(a["shot"].values, b["shot"].values)
    for name in sorted(set(a.data_vars) - TIMING):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    for store in (tmp_path / "one.zarr", tmp_path / "auto.zarr"):
        ds = open_sequence(store)
        starts, ends = ds["start_time"].values, ds["end_time"].values
        assert (ends[:-1] <= starts[1:]).all(), f"{store.name}: shots overlapped or ran out of order"

    assert task_runs(one, expected=2 * shots) == 2 * shots
    batched = task_runs(auto)
    assert 0 < batched < 2 * shots / 2, f"auto made {batched} task runs for {shots} short shots"


@pytest.mark.parametrize("failing", [1, 17])
def test_auto_keeps_the_compile_error_semantics(tmp_path: Path, failing: int) -> None:
    # lookahead 1: shot n compiles while shot n-1 runs, whatever the batch: exactly 0..n-1 complete
    journal = tmp_path / "journal.jsonl"
    spec = lab_spec(
        shots=30,
        journal=journal,
        faults={"rf": {"fail_compile_shot": failing}},
        execution={"lookahead": 1, "shots_per_task": "auto"},
        **FAST,
    )
    state = run(spec, tmp_path / "s.zarr")
    assert state.is_failed()
    info = store_state(tmp_path / "s.zarr")
    assert info["error"]["shot"] == failing and info["error"]["device"] == "rf"
    assert list(open_sequence(tmp_path / "s.zarr")["shot"].values) == list(range(failing))
    journal_events = read_journal(journal)
    assert max(e["shot"] for e in events(journal_events, "run_start")) == failing - 1
