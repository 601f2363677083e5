"""A store deleted or replaced while its writer runs fails the run, naming the store (issue 11,
class 3a): zarr recreates folders on write, so without a check the run would end ``finished``.
The folder is really deleted (or replaced by another folder) between two batches."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import SPEC_JSON, UNITS

from tasks.records import SequenceState, ShotRecord
from tasks.store import ShotStoreWriter, StoreError


def _record(i: int) -> ShotRecord:
    return ShotRecord(index=i, parameters={"x": float(i)}, data={"scope.peak": float(i)}, start_time=i, end_time=i)


def _vanish(path: Path, how: str) -> None:
    if how == "delete":
        shutil.rmtree(path)
    elif how == "replace_empty":
        shutil.rmtree(path)
        path.mkdir()
    else:  # a copy of itself: same content, another folder
        copy = path.with_name("copy.zarr")
        shutil.copytree(path, copy)
        shutil.rmtree(path)
        copy.rename(path)


async def _run(path: Path, shots: int, vanish_after: int, how: str) -> None:
    async with ShotStoreWriter.open(path, spec_json=SPEC_JSON, expected_shots=shots, parameter_units=UNITS) as writer:
        for i in range(shots + 1):
            if i == vanish_after:
                while writer.pending:  # the shots before are durable: the folder goes between two batches
                    await anyio.sleep(0.01)
                _vanish(path, how)
            if i < shots:
                await writer.write(_record(i))
        await writer.finish(SequenceState.FINISHED)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shots=st.integers(1, 20),
    vanish_at=st.floats(0, 1),
    how=st.sampled_from(["delete", "replace_empty", "replace_copy"]),
)
def test_a_store_deleted_or_replaced_mid_run_fails_it_naming_the_store(
    tmp_path_factory: pytest.TempPathFactory, shots: int, vanish_at: float, how: str
) -> None:
    path = tmp_path_factory.mktemp("vanish") / "s.zarr"
    vanish_after = round(vanish_at * shots)  # == shots: after the last shot, before finish
    with pytest.raises(StoreError) as info:
        anyio.run(_run, path, shots, vanish_after, how)
    message = str(info.value)
    assert str(path) in message and ("deleted" in message or "replaced" in message), message
