"""Compaction of real stores on disk: shards instead of per-shot files, values unchanged bit for
bit, idempotent, refused while a writer holds the store, and a resume after it still works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
from simlab import SHOTFLOW
from store_helpers import SPEC_JSON, UNITS, assert_shots_exact, record, write_store

from tasks.records import SequenceState
from tasks.store import (
    CompactionReport,
    ShotStoreWriter,
    StoreBusyError,
    StoreCompactionError,
    StoreError,
    compact_store,
    count_files,
    open_sequence,
    store_state,
)

pytestmark = pytest.mark.anyio

SHOTS = 40
DATA = ("camera.image", "scope.trace")


def _values(path: Path) -> dict[str, bytes]:
    """Every variable and coordinate of the store's completed shots, as raw bytes."""
    ds = open_sequence(path)
    return {name: np.ascontiguousarray(ds[name].values).tobytes() for name in ds.variables}


def _layout(path: Path, name: str) -> dict[str, object]:
    return json.loads((path / name / "zarr.json").read_text())


async def _compact(path: Path) -> CompactionReport:
    return await anyio.to_thread.run_sync(compact_store, path)


def _files(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


async def test_compaction_keeps_every_value_and_leaves_a_few_files(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    await write_store(path, [record(i) for i in range(SHOTS)], expected_shots=SHOTS)
    before, files_before = _values(path), count_files(path)
    assert len(list((path / "camera.image").rglob("*"))) > SHOTS  # one chunk file per shot

    report = await _compact(path)

    assert set(report.arrays) == set(DATA)
    assert report.files_before == files_before and report.files_after == count_files(path)
    for name, shard in {"camera.image": "0.0.0", "scope.trace": "0.0"}.items():
        assert sorted(p.name for p in (path / name).iterdir()) == [shard, "zarr.json"]
        assert _layout(path, name)["codecs"][0]["name"] == "sharding_indexed"  # type: ignore[index]
    assert report.files_after == files_before - 2 * SHOTS + 2
    assert _values(path) == before
    assert_shots_exact(open_sequence(path), range(SHOTS))
    assert store_state(path)["state"] == "finished"
    root = json.loads((path / "zarr.json").read_text())
    assert "consolidated_metadata" in root  # readers get the new layout from the consolidated metadata too


async def test_compacting_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    await write_store(path, [record(i) for i in range(SHOTS)], expected_shots=SHOTS)
    await _compact(path)
    files, metadata = _files(path), (path / "camera.image" / "zarr.json").read_bytes()
    again = await _compact(path)
    assert again.arrays == () and "already compact" in again.describe()
    assert _files(path) == files
    assert (path / "camera.image" / "zarr.json").read_bytes() == metadata


async def test_compaction_is_refused_while_the_writer_holds_the_store(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    async with ShotStoreWriter.open(path, spec_json=SPEC_JSON, expected_shots=SHOTS, parameter_units=UNITS) as writer:
        await writer.write(record(0))
        with pytest.raises(StoreBusyError, match="cannot compact .* while it is being written"):
            await _compact(path)
        await writer.finish(SequenceState.FINISHED)
    assert (path / "camera.image" / "c").is_dir()  # untouched
    assert (await _compact(path)).arrays == DATA


def test_compaction_refuses_a_store_whose_writer_died(tmp_path: Path) -> None:
    """A writer killed mid-run leaves state ``running`` and no lock holder: resume it, not compact."""
    path = tmp_path / "s.zarr"
    code = (
        "import os, anyio, sys; sys.path.insert(0, %r)\n"
        "from store_helpers import record, SPEC_JSON, UNITS\n"
        "from tasks.store import ShotStoreWriter\n"
        "async def main():\n"
        "    async with ShotStoreWriter.open(%r, spec_json=SPEC_JSON, expected_shots=4, parameter_units=UNITS) as w:\n"
        "        await w.write(record(0))\n"
        "        os._exit(0)\n"
        "anyio.run(main)\n"
    ) % (str(Path(__file__).parent), str(path))
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert store_state(path)["state"] == "crashed"
    with pytest.raises(StoreCompactionError, match="still in progress .*shotflow resume"):
        compact_store(path)


def test_a_folder_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a readable zarr store"):
        compact_store(tmp_path)


async def test_a_compacted_store_resumes_and_compacts_again(tmp_path: Path) -> None:
    """An interrupted store, compacted, is expanded back to per-shot chunks by the resuming
    writer, gets its missing shots, and compacts again with every shot bit-exact."""
    path = tmp_path / "s.zarr"
    await write_store(path, [record(i) for i in range(25)], expected_shots=SHOTS, state=SequenceState.INTERRUPTED)
    assert (await _compact(path)).arrays == DATA

    async with ShotStoreWriter.open(
        path, spec_json=SPEC_JSON, expected_shots=SHOTS, parameter_units=UNITS, resume=True
    ) as writer:
        assert writer.completed == frozenset(range(25))
        assert "sharding_indexed" not in (path / "camera.image" / "zarr.json").read_text()  # expanded
        for i in range(25, SHOTS):
            await writer.write(record(i))
        await writer.finish(SequenceState.FINISHED)
    assert_shots_exact(open_sequence(path), range(SHOTS))

    assert (await _compact(path)).arrays == DATA
    ds = open_sequence(path)
    assert ds.sizes["shot"] == SHOTS
    assert_shots_exact(ds, range(SHOTS))
    assert sorted(p.name for p in (path / "camera.image").iterdir()) == ["0.0.0", "zarr.json"]


def _shotflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOTFLOW, *args], capture_output=True, text=True, timeout=120, check=False, env=os.environ.copy()
    )


async def test_the_compact_command(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    await write_store(path, [record(i) for i in range(SHOTS)], expected_shots=SHOTS)
    async with ShotStoreWriter.open(
        path, spec_json=SPEC_JSON, expected_shots=SHOTS + 1, parameter_units=UNITS, resume=True
    ) as writer:
        busy = await anyio.to_thread.run_sync(_shotflow, "compact", str(path))
        await writer.finish(SequenceState.INTERRUPTED)
    assert busy.returncode == 2, busy.stderr
    assert "cannot compact" in busy.stderr and "being written" in busy.stderr

    done = await anyio.to_thread.run_sync(_shotflow, "compact", str(path))
    assert done.returncode == 0, done.stderr
    assert f"compacted 2 array(s) of {path}" in done.stdout
    assert_shots_exact(open_sequence(path), range(SHOTS))

    again = await anyio.to_thread.run_sync(_shotflow, "compact", str(path))
    assert again.returncode == 0 and "already compact" in again.stdout

    not_a_store = await anyio.to_thread.run_sync(_shotflow, "compact", str(tmp_path))
    assert not_a_store.returncode == 2
    assert "not a readable zarr store" in not_a_store.stderr
