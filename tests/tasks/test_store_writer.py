"""The writer's behaviour: back-pressure, one writer, end states, resume, live readers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest
from store_helpers import SPEC_JSON, UNITS, assert_shot_exact, record, write_store

from tasks.records import SequenceState, ShotRecord
from tasks.store import (
    ShotStoreWriter,
    StoreBackpressure,
    StoreBusyError,
    StoreError,
    StoreExistsError,
    StoreNotReadyError,
    StoreSpecMismatchError,
    open_sequence,
    store_state,
)

pytestmark = pytest.mark.anyio


def _open(path: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    options: dict[str, object] = {
        "spec_json": SPEC_JSON,
        "expected_shots": 60,
        "parameter_units": UNITS,
    }
    options.update(kwargs)
    return ShotStoreWriter.open(path, **options)  # type: ignore[arg-type]


async def test_back_pressure_waits_and_drops_nothing(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    async with _open(path, max_pending=4) as writer:
        accepted = 0
        with pytest.raises(StoreBackpressure, match="queue full"):
            for i in range(60):  # no await in between: the worker thread cannot drain
                writer.write_nowait(record(i))
                accepted += 1
        assert 4 <= accepted <= 5  # the queue, plus at most one handed straight to the worker
        assert writer.pending == accepted
        for i in range(accepted, 60):
            await writer.write(record(i))  # waits for room, then proceeds
        await writer.finish(SequenceState.FINISHED)
        assert writer.pending == 0
        assert writer.completed == frozenset(range(60))
    ds = open_sequence(path)
    assert list(ds["shot"].values) == list(range(60))
    assert_shot_exact(ds, accepted)  # the record refused by write_nowait was written by write()


async def test_refuses_to_overwrite_and_needs_zarr_suffix(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    await write_store(path, [record(0)], expected_shots=1)
    with pytest.raises(StoreExistsError, match="already exists"):
        async with _open(path):
            pass
    with pytest.raises(StoreError, match=r"\.zarr"):
        async with _open(tmp_path / "scan.h5"):
            pass
    assert store_state(path)["state"] == "finished"


async def test_one_writer_per_store(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    async with _open(path) as writer:
        with pytest.raises(StoreBusyError, match="one"):
            async with _open(path, resume=True):
                pass
        # another process is refused too
        code = textwrap.dedent(
            f"""
            import anyio
            from tasks.store import ShotStoreWriter, StoreBusyError
            async def main():
                try:
                    async with ShotStoreWriter.open({str(path)!r}, spec_json={SPEC_JSON!r}, expected_shots=60,
                                                    parameter_units={{}}, resume=True):
                        pass
                except StoreBusyError as exc:
                    print("busy:", exc)
            anyio.run(main)
            """
        )
        result = await anyio.run_process([sys.executable, "-c", code], check=True)
        assert "busy:" in result.stdout.decode()
        assert store_state(path)["state"] == "running"
        await writer.write(record(0))
        await writer.finish(SequenceState.FINISHED)


async def test_exception_records_failed_with_its_text(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    with pytest.raises(RuntimeError, match="laser unlocked"):
        async with _open(path) as writer:
            await writer.write(record(0))
            raise RuntimeError("laser unlocked")
    state = store_state(path)
    assert state["state"] == "failed"
    assert state["error"] == {"type": "RuntimeError", "message": "laser unlocked"}
    assert list(open_sequence(path)["shot"].values) == [0]  # the queued shot is durable


async def test_cancellation_records_interrupted_and_keeps_queued_shots(
    tmp_path: Path,
) -> None:
    path = tmp_path / "scan.zarr"
    with anyio.CancelScope() as scope:
        async with _open(path) as writer:
            for i in range(10):
                await writer.write(record(i))
            scope.cancel()
            await anyio.sleep(1)
    assert store_state(path)["state"] == "interrupted"
    assert list(open_sequence(path)["shot"].values) == list(range(10))


async def test_engine_error_and_finish_once(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    error = {"shot": 1, "device": "camera", "message": "timeout"}
    async with _open(path) as writer:
        await writer.write(record(0))
        await writer.finish(SequenceState.FAILED, error)
        with pytest.raises(StoreError, match="finished"):
            await writer.write(record(1))
        with pytest.raises(StoreError, match="already"):
            await writer.finish(SequenceState.FINISHED)
    assert store_state(path)["error"] == error


async def test_resume_continues_and_checks_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    await write_store(
        path,
        [record(i) for i in range(5)],
        expected_shots=8,
        state=SequenceState.INTERRUPTED,
    )
    other = json.dumps({"name": "another scan"})
    with pytest.raises(StoreSpecMismatchError, match="spec"):
        async with _open(path, spec_json=other, expected_shots=8, resume=True):
            pass
    async with _open(path, expected_shots=8, resume=True) as writer:
        assert writer.completed == frozenset(range(5))
        assert store_state(path)["state"] == "running"
        meta = json.loads((path / "zarr.json").read_text())
        assert "consolidated_metadata" not in meta  # live readers must see new shots
        for i in range(5, 8):
            await writer.write(record(i))
        await writer.finish(SequenceState.FINISHED)
    ds = open_sequence(path)
    assert list(ds["shot"].values) == list(range(8))
    assert ds.attrs["completed_shots"] == 8
    for i in (0, 7):
        assert_shot_exact(ds, i)


async def test_live_reader_in_another_process_sees_completed_shots(
    tmp_path: Path,
) -> None:
    path = tmp_path / "scan.zarr"
    reader = textwrap.dedent(
        f"""
        import numpy as np, xarray as xr, warnings
        warnings.simplefilter("ignore")
        ds = xr.open_zarr({str(path)!r}, consolidated=False)
        done = np.flatnonzero(ds["status"].values == 1)
        rng = np.random.default_rng(int(done[-1]))
        image = rng.integers(0, 65535, (16, 24), dtype=np.uint16)
        assert (ds["camera.image"].values[done[-1]] == image).all()
        print(len(done), ds.attrs["state"], float(ds["x"].values[done[-1]]))
        """
    )
    async with _open(path, expected_shots=None) as writer:
        for batch in (range(7), range(7, 20)):
            for i in batch:
                await writer.write(record(i))
            with anyio.fail_after(30):
                while writer.pending:
                    await anyio.sleep(0.01)
            result = await anyio.run_process([sys.executable, "-c", reader], check=True)
            count, state, x = result.stdout.decode().split()
            assert (int(count), state, float(x)) == (
                batch.stop,
                "running",
                (batch.stop - 1) * 1e-3,
            )
        await writer.finish(SequenceState.FINISHED)


def test_a_folder_left_by_a_writer_killed_before_any_metadata_is_reused(tmp_path: Path) -> None:
    path = tmp_path / "unborn.zarr"
    path.mkdir()
    code = (
        "import os, pathlib; from tasks.store._lock import acquire_writer_lock; "
        f"acquire_writer_lock(pathlib.Path({str(path)!r})); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # dies holding the lock
    assert {p.name for p in path.rglob("*") if p.is_file()} == {".writer.lock", ".writer.holder"}
    with pytest.raises(StoreNotReadyError, match="holds no metadata yet"):  # what a reader sees meanwhile
        open_sequence(path)

    async def main() -> None:
        async with ShotStoreWriter.open(path, spec_json="{}", expected_shots=1, parameter_units={}) as writer:
            await writer.write(ShotRecord(0, {"x": 1.0}, {}, 0.0, 1.0))
            await writer.finish(SequenceState.FINISHED)

    anyio.run(main)
    assert open_sequence(path).sizes["shot"] == 1


def test_an_existing_folder_with_other_files_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "mine.zarr"
    path.mkdir()
    (path / "notes.txt").write_text("my data")

    async def main() -> None:
        async with ShotStoreWriter.open(path, spec_json="{}", expected_shots=1, parameter_units={}):
            pass

    with pytest.raises(StoreExistsError):
        anyio.run(main)
    assert (path / "notes.txt").read_text() == "my data"
