"""Every store exports to netCDF: its attributes are strings, numbers or lists of numbers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import anyio
import netCDF4  # noqa: F401 - the engine under test; a missing one must fail, not fall back to netCDF3
import numpy as np
import pytest
import xarray as xr
import zarr
from anyio import open_process
from store_helpers import SPEC_JSON, UNITS, child_argv, record, write_store

from tasks.records import SequenceState, ShotStatus
from tasks.store import ShotStoreWriter, describe_store, open_sequence, store_state
from tasks.store._layout import FORMAT_VERSION

pytestmark = pytest.mark.anyio

ERROR = {"shot": 2, "device": "camera", "message": "camera timed out after 5 s"}


async def _finished(path: Path) -> None:
    await write_store(path, [record(i) for i in range(4)], expected_shots=4)


async def _failed(path: Path) -> None:
    failed = record(2, status=ShotStatus.FAILED, data={})
    await write_store(
        path,
        [record(0), record(1), failed],
        expected_shots=6,
        state=SequenceState.FAILED,
        error=ERROR,
    )


async def _interrupted(path: Path) -> None:
    with anyio.CancelScope() as scope:
        async with ShotStoreWriter.open(
            path, spec_json=SPEC_JSON, expected_shots=None, parameter_units=UNITS
        ) as writer:
            for i in range(3):
                await writer.write(record(i))
            scope.cancel()
            await anyio.sleep(1)


async def _crashed(path: Path) -> None:
    async with await open_process([*child_argv(), str(path), "100000", "new", "unknown", "0.01", SPEC_JSON]) as child:
        assert child.stdout is not None
        assert (await child.stdout.receive()).startswith(b"ready")  # its arrays exist
        with anyio.fail_after(60):
            while open_sequence(path).sizes["shot"] < 3:
                await anyio.sleep(0.05)
        child.kill()
        await child.wait()


STORES = {"finished": _finished, "failed": _failed, "interrupted": _interrupted, "crashed": _crashed}


def _assert_netcdf_safe(attrs: dict[str, object], where: str) -> None:
    for key, value in attrs.items():
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        ok = ok or (
            isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
        assert ok, f"{where}: attribute {key!r} = {value!r}"


def _export_and_reopen(ds: xr.Dataset, out: Path) -> xr.Dataset:
    ds.to_netcdf(out, engine="netcdf4")
    back = xr.open_dataset(out, engine="netcdf4").load()
    xr.testing.assert_identical(back, ds.load())
    return back


@pytest.mark.parametrize("kind", sorted(STORES))
async def test_store_exports_to_netcdf_and_reopens(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.zarr"
    await STORES[kind](path)
    for meta in [path / "zarr.json", *path.glob("*/zarr.json")]:
        _assert_netcdf_safe(json.loads(meta.read_text()).get("attributes", {}), str(meta))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a killed writer's leftover temp files
        plain = xr.open_zarr(path, consolidated=kind != "crashed")
    back = _export_and_reopen(plain, tmp_path / f"{kind}-plain.nc")
    assert back.attrs["format_version"] == FORMAT_VERSION
    assert json.loads(back.attrs["parameter_units"]) == UNITS
    assert back["x"].attrs["units"] == "m"
    completed = _export_and_reopen(open_sequence(path), tmp_path / f"{kind}-completed.nc")
    assert (completed["status"].values == ShotStatus.COMPLETED).all()
    np.testing.assert_array_equal(completed["camera.image"].values[0], record(0).data["camera.image"])

    state = store_state(path)
    if kind == "failed":
        assert json.loads(back.attrs["error"]) == ERROR == state["error"]
    elif kind == "interrupted":
        assert state["error"]["type"] == json.loads(back.attrs["error"])["type"]
    else:
        assert "error" not in back.attrs and state["error"] is None
    assert state["parameter_units"] == UNITS
    assert state["state"] == kind


async def test_a_format_1_store_reads_and_resumes_as_format_2(tmp_path: Path) -> None:
    path = tmp_path / "old.zarr"
    await write_store(path, [record(0), record(1)], expected_shots=None, state=SequenceState.INTERRUPTED)
    group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    old = dict(group.attrs) | {  # how format 1 wrote them: JSON objects and nulls
        "format_version": "shotflow-store/1",
        "error": None,
        "expected_shots": None,
        "parameter_units": UNITS,
    }
    group.attrs.put(old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "consolidated metadata is not part of the v3 spec"
        zarr.consolidate_metadata(str(path), zarr_format=3)
    state = store_state(path)
    assert state["error"] is None and state["parameter_units"] == UNITS
    text = describe_store(path)
    assert "state    interrupted" in text and "0 m .. 1 mm, 2 distinct" in text

    async with ShotStoreWriter.open(
        path, spec_json=SPEC_JSON, expected_shots=None, parameter_units=UNITS, resume=True
    ) as writer:
        await writer.write(record(2))
        await writer.finish(SequenceState.FINISHED)
    ds = xr.open_zarr(path)
    assert ds.attrs["format_version"] == FORMAT_VERSION and ds.sizes["shot"] == 3
    _export_and_reopen(ds, tmp_path / "old.nc")
