"""Helpers shared by the results-store tests (imported as ``store_helpers``).

Deterministic shot records, and a writer that runs in a child process.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import anyio
import numpy as np

from tasks.records import SequenceState, ShotRecord
from tasks.store import ShotStoreWriter

SPEC_JSON = json.dumps({"name": "test scan", "shots": "x in linspace(0, 1 mm, n)"})
UNITS = {"x": "m", "power": "W"}
IMAGE_SHAPE = (16, 24)
TRACE_LENGTH = 50

# Runs :func:`child_writer` in a fresh interpreter: argv = path shots new|resume known|unknown delay spec
CHILD_WRITER = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from store_helpers import child_writer
path, shots, mode, count, delay, spec = sys.argv[1:]
child_writer(path, int(shots), mode == "resume", count == "known", float(delay), spec)
"""

# Imports the store once, then forks one writer per request line ``fork <json args>``; answers
# ``reap <pid>`` with ``reaped <pid>`` once that child is gone. Children print ``ready <pid>``.
ZYGOTE = f"""
import json, os, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from store_helpers import child_writer
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    if command == "fork":
        if os.fork() == 0:
            code = 1
            try:
                child_writer(*json.loads(argument), ready="pid")
                code = 0
            finally:
                os._exit(code)
    elif command == "reap":
        os.waitpid(int(argument), 0)
        print("reaped", argument, flush=True)
"""


def child_writer(
    path: str,
    shots: int,
    resume: bool,
    known: bool,
    delay: float,
    spec_json: str,
    ready: str = "",
) -> None:
    """Write shots 0..shots-1 (skipping completed ones) with :func:`payload` data, then finish.

    Signals readiness (store open) by printing ``ready`` (``ready <pid>`` if ``ready="pid"``).
    """

    async def main() -> None:
        async with ShotStoreWriter.open(
            path,
            spec_json=spec_json,
            expected_shots=shots if known else None,
            parameter_units=UNITS,
            resume=resume,
        ) as writer:
            print("ready", os.getpid(), flush=True) if ready == "pid" else print("ready", flush=True)
            for i in range(shots):
                if i not in writer.completed:
                    await writer.write(record(i))
                    if delay:
                        await anyio.sleep(delay)
            await writer.finish(SequenceState.FINISHED)

    anyio.run(main)


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


def assert_shots_exact(ds: object, indices: Iterable[int]) -> None:
    """Assert every shot in ``indices`` of ``ds`` is bit-exact (loads each variable once)."""
    indices = list(indices)
    if not indices:
        return
    shots = list(ds["shot"].values)  # type: ignore[index]
    loaded = {label: ds[label].values for label in payload(0)}  # type: ignore[index]
    x = ds["x"].values  # type: ignore[index]
    for i in indices:
        row = shots.index(i)
        for label, value in payload(i).items():
            np.testing.assert_array_equal(loaded[label][row], value, err_msg=f"shot {i} {label}")
        assert x[row] == i * 1e-3
