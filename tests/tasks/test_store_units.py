"""The store's variables carry the units, long names, dims and coordinates the devices declared (CF)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from store_helpers import SPEC_JSON, UNITS, record

from tasks.records import SequenceState
from tasks.store import ShotStoreWriter, StoreError, compact_store, open_sequence

PIXEL = 6.5e-6
LAYOUT: dict[str, Any] = {
    "camera.image": {
        "units": "count",
        "long_name": "camera picture image",
        "dims": ["y", "x"],
        "coords": {
            "y": {"units": "m", "long_name": "row position", "start": 0.0, "step": PIXEL},
            "x": {"units": "m", "long_name": "column position", "start": 0.0, "step": PIXEL},
        },
    },
    "scope.trace": {
        "units": "V",
        "long_name": "scope trace",
        "dims": ["time"],
        "coords": {"time": {"units": "s", "long_name": "time after the trigger", "values": list(np.arange(50) * 1e-6)}},
    },
    "scope.peak": {"units": "V", "long_name": "trace peak"},
}


SCAN_UNITS = {"detuning": "Hz", "power": "W"}


async def _write(
    path: Path, layout: dict[str, Any], shots: range, *, resume: bool = False, units: dict[str, str] = SCAN_UNITS
) -> None:
    async with ShotStoreWriter.open(
        path, spec_json=SPEC_JSON, expected_shots=4, parameter_units=units, resume=resume
    ) as writer:
        writer.declare(layout)
        for i in shots:
            parameters = {name: 0.5 * i for name in units}
            await writer.write(record(i, parameters=parameters))
        await writer.finish(SequenceState.FINISHED if shots.stop == 4 else SequenceState.INTERRUPTED)


@pytest.mark.usefixtures("pint_accessor")
def test_declared_variables_carry_units_long_names_dims_and_coordinates(tmp_path: Path) -> None:
    path = tmp_path / "units.zarr"
    asyncio.run(_write(path, LAYOUT, range(4)))
    ds = open_sequence(path)
    assert ds.attrs["Conventions"] == "CF-1.10"
    assert ds["camera.image"].dims == ("shot", "y", "x")
    assert ds["camera.image"].attrs["units"] == "count"
    assert ds["camera.image"].attrs["long_name"] == "camera picture image"
    np.testing.assert_allclose(ds["x"].values, np.arange(24) * PIXEL)
    np.testing.assert_allclose(ds["y"].values, np.arange(16) * PIXEL)
    assert ds["x"].attrs == {"units": "m", "long_name": "column position"}
    assert ds["scope.trace"].dims == ("shot", "time")
    np.testing.assert_allclose(ds["time"].values, np.arange(50) * 1e-6)
    assert ds["scope.peak"].attrs == {"units": "V", "long_name": "trace peak"}
    for name in ("detuning", "power", "shot", "attempts"):  # parameters and bookkeeping too
        assert ds[name].attrs.get("units") and ds[name].attrs.get("long_name"), name
    quantified = ds.pint.quantify()  # every units attribute is one pint reads
    assert str(quantified["camera.image"].pint.units) == "count"
    assert quantified["x"].pint.to("um").values[1] == pytest.approx(6.5)
    assert str(quantified["scope.trace"].pint.units) == "volt"


def test_undeclared_labels_keep_their_own_dims_and_a_long_name(tmp_path: Path) -> None:
    path = tmp_path / "plain.zarr"
    asyncio.run(_write(path, {}, range(4)))
    ds = open_sequence(path)
    assert ds["camera.image"].dims == ("shot", "camera.image.y", "camera.image.x")
    assert ds["camera.image"].attrs == {"long_name": "camera.image"}
    assert "units" not in ds["scope.peak"].attrs


def test_a_dim_name_used_with_another_size_or_coordinate_is_prefixed(tmp_path: Path) -> None:
    """Two cameras with different pixels cannot share ``x``: the second's dims are its own."""
    layout = dict(LAYOUT)
    layout["scope.trace"] = {"units": "V", "dims": ["x"]}  # 50 samples on a dim named like the image's 24 columns
    path = tmp_path / "clash.zarr"
    asyncio.run(_write(path, layout, range(4)))
    ds = open_sequence(path)
    assert ds["camera.image"].dims == ("shot", "y", "x")
    assert ds["scope.trace"].dims == ("shot", "scope.trace.x")
    assert ds.sizes["x"] == 24 and ds.sizes["scope.trace.x"] == 50


def test_a_resumed_and_compacted_store_keeps_its_variables(tmp_path: Path) -> None:
    path = tmp_path / "resumed.zarr"
    asyncio.run(_write(path, LAYOUT, range(2)))
    asyncio.run(_write(path, LAYOUT, range(2, 4), resume=True))
    compact_store(path)
    ds = open_sequence(path)
    assert ds.sizes["shot"] == 4
    assert ds["camera.image"].dims == ("shot", "y", "x")
    assert ds["camera.image"].attrs["units"] == "count"
    np.testing.assert_allclose(ds["x"].values, np.arange(24) * PIXEL)
    assert xr.open_zarr(path).attrs["Conventions"] == "CF-1.10"
    ds.to_netcdf(tmp_path / "resumed.nc")
    assert xr.open_dataset(tmp_path / "resumed.nc")["x"].attrs["units"] == "m"


def test_a_dim_named_like_a_scan_parameter_is_prefixed(tmp_path: Path) -> None:
    path = tmp_path / "parameter.zarr"
    asyncio.run(_write(path, LAYOUT, range(4), units=UNITS))  # the scan's parameters are x and power
    ds = open_sequence(path)
    assert ds["camera.image"].dims == ("shot", "y", "camera.image.x")
    assert ds["camera.image.x"].attrs["units"] == "m"
    assert ds["x"].dims == ("shot",) and ds["x"].attrs["units"] == "m"


def test_the_layout_is_declared_before_the_first_shot(tmp_path: Path) -> None:
    async def late() -> None:
        async with ShotStoreWriter.open(
            tmp_path / "late.zarr", spec_json=SPEC_JSON, expected_shots=4, parameter_units=UNITS
        ) as writer:
            await writer.write(record(0))
            with pytest.raises(StoreError, match="before the first shot"):
                writer.declare(LAYOUT)
            await writer.finish(SequenceState.FINISHED)

    asyncio.run(late())
