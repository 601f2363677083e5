"""The store layout as external readers see it through xarray.open_zarr."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from store_helpers import SPEC_JSON, assert_shot_exact, payload, record, write_store

import tasks.store._arrays as arrays_module
import tasks.store._layout as layout
from tasks.records import SequenceState, ShotStatus
from tasks.store import StoreNotReadyError, StoreShapeError, open_sequence, read_store_spec, store_state

pytestmark = pytest.mark.anyio


async def test_layout_read_back_with_xarray(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    failed = record(3, status=ShotStatus.FAILED, data={}, attempts=3)
    await write_store(path, [record(0), record(1), record(2), failed], expected_shots=6)

    ds = xr.open_zarr(path)
    assert ds.sizes["shot"] == 4  # trimmed after the last written shot (expected_shots keeps 6)
    assert list(ds["shot"].values) == list(range(4))
    assert set(ds.coords) == {"shot", "x", "power"}
    assert ds["x"].dims == ("shot",) and ds["x"].dtype == np.float64 and ds["x"].attrs["units"] == "m"
    assert ds["power"].attrs["units"] == "W"
    assert ds["camera.image"].dims == ("shot", "camera.image.y", "camera.image.x")
    assert ds["camera.image"].dtype == np.uint16
    assert ds["scope.trace"].dims == ("shot", "scope.trace.sample")
    assert ds["scope.peak"].dims == ("shot",)
    status = ds["status"]
    assert status.dtype == np.uint8
    assert list(status.values) == [1, 1, 1, 2]
    assert status.attrs["flag_values"] == [0, 1, 2]
    assert status.attrs["flag_meanings"] == "pending completed failed"
    assert list(ds["attempts"].values[:4]) == [1, 1, 1, 3]
    assert ds["start_time"].dtype.kind == "M"  # decoded to datetime64
    assert ds["start_time"].values[1] == np.datetime64(int(1.7e9 + 1), "s")

    attrs = ds.attrs
    assert attrs["state"] == "finished"
    assert attrs["expected_shots"] == 6
    assert attrs["completed_shots"] == 3
    assert "error" not in attrs  # absent values are omitted, never null
    assert json.loads(attrs["spec"]) == json.loads(SPEC_JSON)
    assert json.loads(attrs["parameter_units"]) == {"x": "m", "power": "W"}
    assert attrs["format_version"] == layout.FORMAT_VERSION
    assert {"created", "updated", "ended"} <= set(attrs)
    for i in range(3):
        assert_shot_exact(ds, i)
    assert np.all(ds["camera.image"].values[3] == 0)  # a failed shot has no data

    meta = json.loads((path / "zarr.json").read_text())
    assert "consolidated_metadata" in meta  # consolidated at the end
    image = zarr.open_array(str(path / "camera.image"), mode="r")
    assert image.chunks == (1, *payload(0)["camera.image"].shape)  # type: ignore[union-attr]
    assert read_store_spec(path) == SPEC_JSON


async def test_open_sequence_returns_completed_shots(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    failed = record(1, status=ShotStatus.FAILED, data={})
    await write_store(
        path,
        [record(0), failed, record(2)],
        expected_shots=5,
        state=SequenceState.INTERRUPTED,
    )
    ds = open_sequence(path)
    assert list(ds["shot"].values) == [0, 2]
    assert_shot_exact(ds, 2)
    assert open_sequence(path, completed_only=False).sizes["shot"] == 3  # trimmed after the last written shot
    assert store_state(path)["state"] == "interrupted"


async def test_unknown_count_grows_in_blocks_and_trims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrays_module, "GROW_BLOCK", 4)  # the writer's copies of the layout constants
    monkeypatch.setattr(arrays_module, "SERIES_CHUNK", 4)
    path = tmp_path / "scan.zarr"
    await write_store(path, [record(i) for i in range(11)], expected_shots=None)
    ds = xr.open_zarr(path)
    assert ds.sizes["shot"] == 11
    assert list(ds["shot"].values) == list(range(11))
    assert "expected_shots" not in ds.attrs and ds.attrs["completed_shots"] == 11
    assert store_state(path)["expected_shots"] is None
    assert (ds["status"].values == 1).all()
    for i in (0, 4, 10):
        assert_shot_exact(ds, i)
    assert zarr.open_array(str(path / "status"), mode="r").chunks == (4,)


async def test_parameter_first_seen_late_is_nan_before(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    late = [record(i, parameters={"x": i * 1e-3, "power": 0.5, "late": 2.0 * i, "gate": True}) for i in (2, 3)]
    await write_store(path, [record(0), record(1), *late], expected_shots=4)
    ds = open_sequence(path)
    assert "late" in ds.coords and "gate" in ds.coords
    np.testing.assert_array_equal(ds["late"].values, [np.nan, np.nan, 4.0, 6.0])
    assert ds["gate"].dtype == bool
    assert list(ds["gate"].values) == [False, False, True, True]
    assert "units" not in ds["late"].attrs  # no unit given for it


@pytest.mark.parametrize(
    ("label", "bad"),
    [
        ("camera.image", np.zeros((16, 25), np.uint16)),
        ("scope.trace", np.zeros(50, np.float64)),
    ],
)
async def test_shape_or_dtype_change_names_the_label(tmp_path: Path, label: str, bad: np.ndarray) -> None:
    path = tmp_path / "scan.zarr"
    from store_helpers import UNITS

    from tasks.store import ShotStoreWriter

    async with ShotStoreWriter.open(path, spec_json=SPEC_JSON, expected_shots=3, parameter_units=UNITS) as writer:
        await writer.write(record(0))
        with pytest.raises(StoreShapeError, match=label) as info:
            await writer.write(record(1, data={**payload(1), label: bad}))
        assert info.value.label == label
        await writer.write(record(2))  # the writer is still healthy
        await writer.finish(SequenceState.FINISHED)
    assert list(open_sequence(path)["shot"].values) == [0, 2]


def test_a_store_with_only_its_group_metadata_is_not_ready(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    # the first thing a writer writes; killed right after it, the arrays never appear
    attributes = {"format_version": layout.FORMAT_VERSION, "state": "running"}
    zarr.open_group(str(path), mode="a", zarr_format=3, attributes=attributes)
    with pytest.raises(StoreNotReadyError, match="no shot arrays yet"):
        open_sequence(path)
