"""A writer killed in the middle of resizing its arrays (growing every 1024 shots when the count is
unknown, trimming at the end, repairing on resume) leaves a store that plain ``xr.open_zarr`` opens.

The writer is a real process; it SIGKILLs itself after rewriting the metadata of half of its
arrays — the moment at which they have different lengths on disk.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import anyio
import numpy as np
import pytest
import xarray as xr

from tasks.records import SequenceState, ShotRecord
from tasks.store import ShotStoreWriter, open_sequence, store_state

SPEC_JSON = '{"name": "resize-kill"}'

CHILD = (
    r"""
import os, signal, sys
import anyio, numpy as np
import tasks.store._arrays as arrays_module
from tasks.records import SequenceState, ShotRecord
from tasks.store import ShotStoreWriter

path, shots, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "resume"
real = arrays_module.resize_all

def die_half_way(arrays, length, loop=None):
    arrays = list(arrays)
    real(arrays[: len(arrays) // 2], length, loop)
    os.kill(os.getpid(), signal.SIGKILL)

arrays_module.resize_all = die_half_way

def record(i):
    return ShotRecord(i, {"x": i * 1e-3}, {"cam.image": np.full((4, 4), i, np.uint16), "cam.total": float(i)},
                      1.7e9 + i, 1.7e9 + i + 0.01)

async def main():
    async with ShotStoreWriter.open(path, spec_json=%r, expected_shots=None, parameter_units={"x": "s"},
                                    resume=resume) as writer:
        for i in range(shots):
            if i not in writer.completed:
                await writer.write(record(i))
        await writer.finish(SequenceState.FINISHED)

anyio.run(main)
"""
    % SPEC_JSON
)


def _record(i: int) -> ShotRecord:
    return ShotRecord(
        i,
        {"x": i * 1e-3},
        {"cam.image": np.full((4, 4), i, np.uint16), "cam.total": float(i)},
        1.7e9 + i,
        1.7e9 + i + 0.01,
    )


def _killed_writer(path: Path, shots: int, *, resume: bool = False) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(shots), "resume" if resume else "new"],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


def _check_opens_with_xarray(path: Path) -> set[int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # leftover temp files are "not recognized" by zarr
        plain = xr.open_zarr(path)  # must not fail with "conflicting sizes"
    lengths = {plain[name].shape[0] for name in plain.variables if plain[name].dims[:1] == ("shot",)}
    assert len(lengths) == 1
    completed = set(np.flatnonzero(plain["status"].values == 1).tolist())
    for i in completed:  # bit-exact through plain xarray
        assert (plain["cam.image"].values[i] == i).all() and plain["cam.total"].values[i] == i
    ds = open_sequence(path)
    assert set(ds["shot"].values.tolist()) == completed
    assert store_state(path)["state"] == "crashed"
    return completed


async def _resume(path: Path, shots: int) -> None:
    async with ShotStoreWriter.open(
        path, spec_json=SPEC_JSON, expected_shots=None, parameter_units={"x": "s"}, resume=True
    ) as writer:
        for i in range(shots):
            if i not in writer.completed:
                await writer.write(_record(i))
        await writer.finish(SequenceState.FINISHED)


def _check_finished(path: Path, shots: int) -> None:
    ds = xr.open_zarr(path)
    assert ds.attrs["state"] == "finished" and ds.sizes["shot"] == shots
    assert (ds["status"].values == 1).all()
    np.testing.assert_array_equal(ds["cam.total"].values, np.arange(shots))


@pytest.mark.parametrize(
    ("shots", "moment"),
    [(1030, "growing past 1024 shots"), (10, "trimming at the end")],
)
def test_kill_mid_resize_leaves_a_store_xarray_opens(tmp_path: Path, shots: int, moment: str) -> None:
    path = tmp_path / "s.zarr"
    _killed_writer(path, shots)
    completed = _check_opens_with_xarray(path)
    assert completed, f"killed while {moment}: the shots written before it are kept"
    # the resumed writer repairs the lengths; kill it half-way through its own repair/resize too
    _killed_writer(path, shots, resume=True)
    assert _check_opens_with_xarray(path) >= completed
    anyio.run(_resume, path, shots)
    _check_finished(path, shots)
