"""A real run's store: every variable says what it is (units, long name), images and traces have
coordinates, and pint-xarray quantifies the whole dataset. Embedded Prefect, the simulated lab."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from simlab import lab_dict, run

from flows.sequence import SequenceSpec
from tasks.store import open_sequence

pytestmark = pytest.mark.usefixtures("prefect_server")

FLAGS = {"status", "analysis.atoms.ok", "analysis.cloud.ok"}
"""CF flags and booleans: no units (they are not quantities)."""


@pytest.mark.usefixtures("pint_accessor")
def test_a_run_stores_units_and_coordinates_that_pint_and_netcdf_read(tmp_path: Path) -> None:
    spec = lab_dict(shots=4, devices=("sequencer", "camera", "rf", "scope"), name="units")
    spec["devices"]["camera"] |= {"roi": [8, 12], "pixel_size": "2 um"}
    spec["devices"]["scope"] |= {"sample_rate": "1 MHz"}
    spec["analyses"] = {
        "atoms": {"type": "roi_sum", "data": "camera.atoms"},
        "cloud": {"type": "gaussian_2d", "data": "camera.atoms"},
    }
    store = tmp_path / "units.zarr"
    assert run(SequenceSpec.model_validate(spec), store).is_completed()
    ds = open_sequence(store)
    assert ds.attrs["Conventions"].startswith("CF-")
    assert ds["camera.atoms"].dims == ("shot", "y", "x")
    np.testing.assert_allclose(ds["x"].values, np.arange(12) * 2e-6)
    np.testing.assert_allclose(ds["y"].values, np.arange(8) * 2e-6)
    assert ds["scope.trace"].dims == ("shot", "time")
    np.testing.assert_allclose(ds["time"].values, np.arange(50) * 1e-6)
    expected = {
        "camera.atoms": "count",
        "rf.frequency": "Hz",
        "sequencer.duration": "s",
        "scope.trace": "V",
        "analysis.atoms.sum": "count",
        "analysis.cloud.amplitude": "count",
        "analysis.cloud.x": "pixel",
        "x": "m",
        "time": "s",
        "detuning": "Hz",
    }
    for name, unit in expected.items():
        assert ds[name].attrs["units"] == unit, name
    for name, variable in {**ds.data_vars, **ds.coords}.items():
        assert variable.attrs.get("long_name"), f"{name} has no long_name"
        if name not in FLAGS and variable.dtype.kind not in "Mb":  # times are decoded by xarray (CF units)
            assert variable.attrs.get("units"), f"{name} has no units"
    quantified = ds.pint.quantify()
    assert quantified["x"].pint.to("um").values[-1] == pytest.approx(22.0)
    assert str(quantified["analysis.atoms.sum"].pint.units) == "count"
    grid = open_sequence(store, grid=True)
    assert grid["camera.atoms"].dims == ("detuning", "y", "x")
    grid.to_netcdf(tmp_path / "units.nc")
    assert xr.open_dataset(tmp_path / "units.nc")["x"].attrs["units"] == "m"


def test_a_bad_pixel_size_is_refused_naming_the_device(tmp_path: Path) -> None:
    spec = lab_dict(shots=2, name="bad-pixel")
    spec["devices"]["camera"] |= {"pixel_size": "-1 um"}
    state = run(SequenceSpec.model_validate(spec), tmp_path / "bad.zarr")
    assert state.is_failed()
    assert "pixel_size" in str(state.message) and "camera" in str(state.message)
