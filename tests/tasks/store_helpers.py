"""Helpers shared by the results-store tests (imported as ``store_helpers``): deterministic shot records and a writer child process."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from tasks import SequenceState, ShotRecord, ShotStoreWriter

SPEC_JSON = json.dumps({"name": "test scan", "shots": "x in linspace(0, 1 mm, n)"})
UNITS = {"x": "m", "power": "W"}
IMAGE_SHAPE = (16, 24)
TRACE_LENGTH = 50

# A child process writing deterministic shots (same payload() as below); killed by the tests.
CHILD_WRITER = """
import sys, time
import anyio, numpy as np
from tasks import SequenceState, ShotRecord, ShotStoreWriter

path, shots, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "resume"
expected = None if sys.argv[4] == "unknown" else shots
delay = float(sys.argv[5])

def payload(i):
    rng = np.random.default_rng(i)
    return {
        "camera.image": rng.integers(0, 65535, (16, 24), dtype=np.uint16),
        "scope.trace": rng.standard_normal(50).astype(np.float32),
        "scope.peak": float(i) * 0.5,
    }

async def main():
    async with ShotStoreWriter.open(path, spec_json=sys.argv[6], expected_shots=expected,
                                    parameter_units={"x": "m", "power": "W"}, resume=resume) as w:
        print("ready", flush=True)
        for i in range(shots):
            if i in w.completed:
                continue
            await w.write(ShotRecord(i, {"x": i * 1e-3, "power": 0.5}, payload(i), 1.7e9 + i, 1.7e9 + i + 0.01))
            if delay:
                await anyio.sleep(delay)
        await w.finish(SequenceState.FINISHED)

anyio.run(main)
"""


def payload(i: int) -> dict[str, object]:
    """The deterministic data of shot ``i`` (identical to the child writer's)."""
    rng = np.random.default_rng(i)
    return {
        "camera.image": rng.integers(0, 65535, IMAGE_SHAPE, dtype=np.uint16),
        "scope.trace": rng.standard_normal(TRACE_LENGTH).astype(np.float32),
        "scope.peak": float(i) * 0.5,
    }


def record(i: int, **overrides: object) -> ShotRecord:
    """A completed record for shot ``i`` with :func:`payload` data and parameters x, power."""
    fields: dict[str, object] = {
        "index": i,
        "parameters": {"x": i * 1e-3, "power": 0.5},
        "data": payload(i),
        "start_time": 1.7e9 + i,
        "end_time": 1.7e9 + i + 0.01,
    }
    fields.update(overrides)
    return ShotRecord(**fields)  # type: ignore[arg-type]


async def write_store(
    path: Path,
    records: Iterable[ShotRecord],
    *,
    expected_shots: int | None,
    state: SequenceState = SequenceState.FINISHED,
    error: Mapping[str, object] | None = None,
) -> None:
    """Write ``records`` into a new store and finish it with ``state``."""
    async with ShotStoreWriter.open(
        path, spec_json=SPEC_JSON, expected_shots=expected_shots, parameter_units=UNITS
    ) as writer:
        for r in records:
            await writer.write(r)
        await writer.finish(state, error)


def assert_shot_exact(ds: object, i: int) -> None:
    """Assert shot ``i`` of Dataset ``ds`` (indexed by shot number) is bit-exact."""
    shot = ds.sel(shot=i)  # type: ignore[attr-defined]
    for label, value in payload(i).items():
        np.testing.assert_array_equal(shot[label].values, value, err_msg=f"shot {i} {label}")
    assert float(shot["x"]) == i * 1e-3


def child_argv() -> list[str]:
    """argv prefix running :data:`CHILD_WRITER` with this interpreter."""
    return [sys.executable, "-c", CHILD_WRITER]
