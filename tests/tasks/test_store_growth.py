"""A store's size follows the shots written, not the shots expected (issue 11, class 2)."""

from __future__ import annotations

from pathlib import Path

import anyio
import numpy as np
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import SPEC_JSON, UNITS

from tasks.records import SequenceState, ShotRecord
from tasks.store import ShotStoreWriter, open_sequence, store_state
from tasks.store._layout import GROW_BLOCK


def _record(i: int) -> ShotRecord:
    return ShotRecord(index=i, parameters={"x": i * 1e-3}, data={"scope.peak": float(i)}, start_time=i, end_time=i)


def _files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


async def _write(path: Path, expected: int | None, shots: list[int], resume: bool, state: SequenceState) -> int:
    """Write ``shots``; return the files the store held right after it was opened."""
    async with ShotStoreWriter.open(
        path, spec_json=SPEC_JSON, expected_shots=expected, parameter_units=UNITS, resume=resume
    ) as writer:
        opened = _files(path)
        if not resume:
            assert zarr.open_array(str(path / "status"), mode="r").shape[0] <= GROW_BLOCK
        for i in shots:
            await writer.write(_record(i))
        await writer.finish(state)
    return opened


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    expected=st.one_of(st.none(), st.integers(1, 10**12)),
    first=st.sets(st.integers(0, 3 * GROW_BLOCK), max_size=6),
    then=st.sets(st.integers(0, 3 * GROW_BLOCK), max_size=6),
)
def test_creation_is_independent_of_the_expected_count_and_resume_reads_back(
    tmp_path_factory: object, expected: int | None, first: set[int], then: set[int]
) -> None:
    path = tmp_path_factory.mktemp("growth") / "s.zarr"  # type: ignore[attr-defined]
    if expected is not None:
        first, then = {i for i in first if i < expected}, {i for i in then if i < expected}
    opened = anyio.run(_write, path, expected, sorted(first), False, SequenceState.INTERRUPTED)
    assert opened <= 12, "a store is a handful of files before its first shot"
    anyio.run(_write, path, expected, sorted(then - first), True, SequenceState.FINISHED)
    written = sorted(first | then)
    ds = open_sequence(path)
    assert list(ds["shot"].values) == written
    if written:
        np.testing.assert_array_equal(ds["scope.peak"].values, np.array(written, dtype=float))
    everything = open_sequence(path, completed_only=False)
    assert everything.sizes["shot"] == (written[-1] + 1 if written else 0), "trimmed after the last written shot"
    assert list(everything["shot"].values) == list(range(everything.sizes["shot"]))
    state = store_state(path)
    assert state["expected_shots"] == expected and state["completed_shots"] == len(written)
