"""open_sequence(grid=True): stores written by real runs (embedded Prefect, simulated lab) on the scan's axes."""

from __future__ import annotations

import asyncio
import copy
import tempfile
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simlab import lab_dict
from store_helpers import record, write_store
from xarray.coding.variables import SerializationWarning

from flows.run import run_sequence
from flows.sequence import SequenceSpec, load_spec
from tasks.store import StoreError, open_sequence

matplotlib.use("Agg")

pytestmark = pytest.mark.usefixtures("prefect_server")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def linspace(variable: str, start: str, stop: str, num: int, steps: list[Any], **extra: Any) -> dict[str, Any]:
    return {"linspace": {"variable": variable, "start": start, "stop": stop, "num": num, "steps": steps, **extra}}


def repeat(count: int, steps: list[Any]) -> dict[str, Any]:
    return {"repeat": {"count": count, "steps": steps}}


def scan(iteration: list[Any], *, noise: bool = True, **kwargs: Any) -> SequenceSpec:
    """The simulated lab (camera signal and RF frequency follow ``detuning``) over ``iteration``."""
    spec = lab_dict(name="grid", **kwargs)
    spec["iteration"] = iteration
    spec["devices"]["camera"]["noise"] = noise
    return SequenceSpec.model_validate(spec)


def run(spec: SequenceSpec, store: Path) -> Any:
    return asyncio.run(run_sequence(spec, store=str(store), return_state=True))


def assert_each_shot_at_its_cell(flat: xr.Dataset, grid: xr.Dataset, axes: list[str]) -> None:
    """Every completed shot's parameters and data are at the cell of its recorded loop positions."""
    taken = np.zeros([grid.sizes[a] for a in axes], bool)
    for i in range(flat.sizes["shot"]):
        shot = flat.isel(shot=i)
        cell = {a: int(shot[f"index.{a}"]) for a in axes}
        here = grid.isel(cell)
        taken[tuple(cell.values())] = True
        assert int(here["shot"]) == int(shot["shot"])
        np.testing.assert_array_equal(here["camera.atoms"].values, shot["camera.atoms"].values)
        np.testing.assert_array_equal(here["rf.frequency"].values, shot["rf.frequency"].values)
        for a in axes:
            if a in flat.variables:
                assert float(here[a]) == float(shot[a])
    assert np.isnan(grid["shot"].values[~taken]).all()
    assert np.isnan(grid["rf.frequency"].values[~taken]).all()


def test_a_2d_scan_with_repeats_is_a_map(tmp_path: Path) -> None:
    spec = scan([linspace("power", "1", "3", 3, [linspace("detuning", "-2 MHz", "2 MHz", 4, [repeat(2, ["shot"])])])])
    store = tmp_path / "map.zarr"
    assert run(spec, store).is_completed()
    flat = open_sequence(store)
    assert list(flat["index.repeat"].values) == [0, 1] * 12
    assert list(flat["index.detuning"].values) == [0, 0, 1, 1, 2, 2, 3, 3] * 3
    assert list(flat["index.power"].values) == [0] * 8 + [1] * 8 + [2] * 8

    grid = open_sequence(store, grid=True)
    assert grid["camera.atoms"].dims == ("power", "detuning", "repeat", "y", "x")
    assert grid["camera.atoms"].shape == (3, 4, 2, 8, 8)
    np.testing.assert_allclose(grid["detuning"].values, np.linspace(-2e6, 2e6, 4))
    assert grid["detuning"].attrs["units"] == "Hz"
    np.testing.assert_allclose(grid["power"].values, [1, 2, 3])
    assert list(grid["repeat"].values) == [0, 1]
    np.testing.assert_allclose(
        grid["rf.frequency"].values, 80e6 + np.broadcast_to(grid["detuning"].values[:, None], (3, 4, 2))
    )
    assert_each_shot_at_its_cell(flat, grid, ["power", "detuning", "repeat"])

    signal = grid["camera.atoms"].mean(("x", "y", "repeat"))
    mesh = signal.plot()
    assert type(mesh).__name__ == "QuadMesh" and mesh.get_array().shape in {(3, 4), (12,)}
    mesh.figure.savefig(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 0

    grid.to_netcdf(tmp_path / "map.nc")
    back = xr.open_dataset(tmp_path / "map.nc")
    np.testing.assert_array_equal(back["camera.atoms"].values, grid["camera.atoms"].values)
    np.testing.assert_allclose(back["detuning"].values, grid["detuning"].values)
    back.close()


def test_a_shuffled_scan_lands_in_scan_order(tmp_path: Path) -> None:
    steps = [linspace("detuning", "-2 MHz", "2 MHz", 7, ["shot"])]
    shuffled = copy.deepcopy(steps)
    shuffled[0]["linspace"] |= {"shuffle": True, "seed": 3}
    assert run(scan(steps, noise=False), tmp_path / "plain.zarr").is_completed()
    assert run(scan(shuffled, noise=False), tmp_path / "shuffled.zarr").is_completed()
    flat = open_sequence(tmp_path / "shuffled.zarr")
    assert not (np.diff(flat["detuning"].values) > 0).all(), "the seed did not shuffle"
    order = np.argsort(flat["detuning"].values)
    assert list(flat["index.detuning"].values[order]) == list(range(7))

    plain = open_sequence(tmp_path / "plain.zarr", grid=True)
    grid = open_sequence(tmp_path / "shuffled.zarr", grid=True)
    np.testing.assert_array_equal(grid["detuning"].values, plain["detuning"].values)
    np.testing.assert_array_equal(grid["rf.frequency"].values, plain["rf.frequency"].values)
    np.testing.assert_array_equal(grid["camera.atoms"].values, plain["camera.atoms"].values)
    assert list(grid["shot"].values) != list(range(7))


def test_an_interrupted_scan_has_missing_cells(tmp_path: Path) -> None:
    spec = scan(
        [linspace("power", "1", "2", 2, [linspace("detuning", "-2 MHz", "2 MHz", 3, ["shot"])])],
        faults={"rf": {"fail_compile_shot": 4}},
        execution={"lookahead": 1},
    )
    store = tmp_path / "cut.zarr"
    assert run(spec, store).is_failed()
    grid = open_sequence(store, grid=True)
    assert grid["camera.atoms"].shape == (2, 3, 8, 8)
    taken = ~np.isnan(grid["shot"].values)
    assert taken.tolist() == [[True, True, True], [True, False, False]]
    assert np.isnan(grid["camera.atoms"].values[1, 1:]).all()
    assert not np.isnan(grid["camera.atoms"].values[taken]).any()
    assert np.isnat(grid["start_time"].values[1, 2])
    np.testing.assert_allclose(grid["detuning"].values, np.linspace(-2e6, 2e6, 3))


def test_the_ragged_example_is_padded_with_its_true_times(tmp_path: Path) -> None:
    store = tmp_path / "scan_2d.zarr"
    assert run(load_spec(EXAMPLES / "scan_2d.yaml"), store).is_completed()
    flat = open_sequence(store)
    grid = open_sequence(store, grid=True)
    assert grid["camera.cloud"].dims[:3] == ("trap_depth", "index.time_of_flight", "repeat")
    tof = grid["time_of_flight"]
    assert tof.dims == ("trap_depth", "index.time_of_flight") and tof.attrs["units"] == "s"
    # from 1 ms + 2 ms * depth, by 1 ms, below 6 ms: 5, 5 and 4 values
    counts = (~np.isnan(tof.values)).sum(axis=1)
    assert counts.tolist() == [5, 5, 4] and grid.sizes["index.time_of_flight"] == 5
    np.testing.assert_allclose(tof.values[0], [1.4e-3, 2.4e-3, 3.4e-3, 4.4e-3, 5.4e-3])
    np.testing.assert_allclose(tof.values[2, :4], [2.2e-3, 3.2e-3, 4.2e-3, 5.2e-3])
    assert np.isnan(tof.values[2, 4]) and np.isnan(grid["shot"].values[2, 4]).all()
    assert np.isnan(grid["camera.cloud"].values[2, 4]).all()
    assert_each_shot_at_its_cell_ragged(flat, grid)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SerializationWarning)  # no float cast back to an integer dtype
        grid.to_netcdf(tmp_path / "scan_2d.nc")
    back = xr.open_dataset(tmp_path / "scan_2d.nc").load()
    np.testing.assert_array_equal(back["camera.cloud"].values, grid["camera.cloud"].values)  # NaN where padded
    np.testing.assert_array_equal(back["attempts"].values, grid["attempts"].values)


def assert_each_shot_at_its_cell_ragged(flat: xr.Dataset, grid: xr.Dataset) -> None:
    for i in range(flat.sizes["shot"]):
        shot = flat.isel(shot=i)
        cell = {"trap_depth": int(shot["index.trap_depth"]), "index.time_of_flight": int(shot["index.time_of_flight"])}
        here = grid.isel(cell | {"repeat": int(shot["index.repeat"])})
        assert int(here["shot"]) == int(shot["shot"])
        assert float(here["time_of_flight"]) == float(shot["time_of_flight"])
        np.testing.assert_array_equal(here["camera.cloud"].values, shot["camera.cloud"].values)


def test_sibling_loops_are_not_a_grid(tmp_path: Path) -> None:
    spec = scan([linspace("detuning", "-1 MHz", "1 MHz", 2, ["shot"]), linspace("power", "1", "2", 2, ["shot"])])
    store = tmp_path / "siblings.zarr"
    assert run(spec, store).is_completed()
    with pytest.raises(StoreError, match=r"'detuning' and 'power' are siblings.*grid=True does not apply"):
        open_sequence(store, grid=True)
    assert open_sequence(store).sizes["shot"] == 4


def test_shots_outside_the_inner_loop_are_not_a_grid(tmp_path: Path) -> None:
    spec = scan([linspace("detuning", "-1 MHz", "1 MHz", 2, ["shot", repeat(2, ["shot"])])])
    store = tmp_path / "mixed.zarr"
    assert run(spec, store).is_completed()
    with pytest.raises(StoreError, match=r"shots 0, 1 sit at the same grid cell"):
        open_sequence(store, grid=True)


def test_a_variable_or_device_named_index_is_refused_before_running() -> None:
    with pytest.raises(ValueError, match=r"iteration\.0\..*linspace\.variable\n.*'index' names the store's loop"):
        scan([linspace("index", "1", "2", 2, ["shot"])])
    spec = lab_dict(name="grid")
    spec["devices"]["index"] = spec["devices"].pop("rf")
    with pytest.raises(ValueError, match=r"devices\.index: 'index' names the store's loop indices"):
        SequenceSpec.model_validate(spec)


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    repeats=st.integers(0, 2),
    shuffle=st.booleans(),
)
def test_every_shot_of_a_random_product_scan_lands_at_its_cell(sizes: list[int], repeats: int, shuffle: bool) -> None:
    names = ["detuning", "power", "depth"][: len(sizes)]
    body: list[Any] = [repeat(repeats, ["shot"])] if repeats else ["shot"]
    for name, size in reversed(list(zip(names, sizes, strict=True))):
        body = [
            linspace(
                name,
                "-1 MHz" if name == "detuning" else "0",
                "1 MHz" if name == "detuning" else "1",
                size,
                body,
                **({"shuffle": True, "seed": size} if shuffle else {}),
            )
        ]
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "random.zarr"
        assert run(scan(body), store).is_completed()
        flat, grid = open_sequence(store), open_sequence(store, grid=True)
        axes = [*names, *(["repeat"] if repeats else [])]
        assert list(grid["camera.atoms"].dims[: len(axes)]) == axes
        assert grid["camera.atoms"].shape[: len(axes)] == (*sizes, *([repeats] if repeats else []))
        assert_each_shot_at_its_cell(flat, grid, axes)
        assert not np.isnan(grid["shot"].values).any()


def test_a_resumed_scan_continues_the_indices(tmp_path: Path) -> None:
    release = tmp_path / "release"
    iteration = [linspace("power", "1", "2", 2, [linspace("detuning", "-2 MHz", "2 MHz", 3, ["shot"])])]
    # shot 4 waits for the release file, which does not exist yet: its timeout ends the run
    spec = scan(
        iteration, faults={"camera": {"hold_shot": 4, "hold_until": str(release)}}, execution={"shot_timeout": "1 s"}
    )
    store = tmp_path / "resumed.zarr"
    assert not run(spec, store).is_completed()
    assert (~np.isnan(open_sequence(store, grid=True)["shot"].values)).sum() == 4
    release.touch()
    state = asyncio.run(run_sequence(spec, store=str(store), resume=True, return_state=True))
    assert state.is_completed(), state.message
    flat, grid = open_sequence(store), open_sequence(store, grid=True)
    assert list(flat["index.detuning"].values) == [0, 1, 2] * 2
    assert list(flat["index.power"].values) == [0, 0, 0, 1, 1, 1]
    assert grid["shot"].values.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert_each_shot_at_its_cell(flat, grid, ["power", "detuning"])


def test_an_older_store_without_axes_or_indices_is_refused(tmp_path: Path) -> None:
    asyncio.run(write_store(tmp_path / "old.zarr", [record(i) for i in range(3)], expected_shots=3))
    with pytest.raises(StoreError, match=r"records no scan axes \(written by an older shotflow\)"):
        open_sequence(tmp_path / "old.zarr", grid=True)
    assert open_sequence(tmp_path / "old.zarr").sizes["shot"] == 3
    with pytest.raises(ValueError, match=r"completed shots only"):
        open_sequence(tmp_path / "old.zarr", grid=True, completed_only=False)


def test_an_inner_range_that_moves_with_the_outer_variable_keeps_its_true_values(tmp_path: Path) -> None:
    # same size everywhere, but the inner start follows the outer variable: not one value per position
    inner = linspace("detuning", "-1 MHz + offset2", "1 MHz + offset2", 3, ["shot"])
    spec = scan([{"values": {"variable": "offset2", "values": ["0 MHz", "1 MHz"], "steps": [inner]}}])
    store = tmp_path / "moving.zarr"
    assert run(spec, store).is_completed()
    grid = open_sequence(store, grid=True)
    assert grid["detuning"].dims == ("offset2", "index.detuning")
    np.testing.assert_allclose(grid["detuning"].values, [[-1e6, 0, 1e6], [0, 1e6, 2e6]])
    np.testing.assert_allclose(grid["rf.frequency"].values, 80e6 + grid["detuning"].values)
