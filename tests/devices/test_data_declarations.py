"""Devices declare their data: the declaration model and the refusals of ShotContext.signal_data."""

import anyio
import numpy as np
import pint
import pytest

from devices import Coordinate, DataDeclaration, DataDeclarationError, ShotContextError, ShotExchange

IMAGE = DataDeclaration(
    unit="",
    dims=("y", "x"),
    shape=(2, 3),
    dtype="uint16",
    coords={"x": Coordinate(unit="m", step=5e-6), "y": Coordinate(unit="m", values=(0.0, 1e-6))},
    long_name="atoms",
)


def test_a_declaration_keeps_what_it_declares() -> None:
    assert IMAGE.dtype == "uint16" and IMAGE.dims == ("y", "x")
    np.testing.assert_allclose(IMAGE.coords["x"].array(3), [0, 5e-6, 10e-6])
    with pytest.raises(AttributeError):
        IMAGE.unit = "m"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"unit": "furlongs per blorp"}, "unit 'furlongs per blorp'"),
        ({"dims": ("x",), "shape": (2, 3)}, "shape"),
        ({"dims": ("x", "x")}, "repeat"),
        ({"dims": ("x",), "coords": {"z": Coordinate(step=1.0)}}, "'z'"),
        ({"dims": ("x",), "shape": (3,), "coords": {"x": Coordinate(values=(1.0,))}}, "1 values"),
    ],
)
def test_inconsistent_declarations_are_refused(kwargs, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        DataDeclaration(**kwargs)


def context(declarations):
    return ShotExchange(0, {}, ["cam"], declarations=declarations).context_for("cam")


@pytest.mark.parametrize(
    ("label", "value", "problem"),
    [
        ("ghost", np.zeros((2, 3), np.uint16), "undeclared data 'ghost'"),
        ("atoms", np.zeros((2, 4), np.uint16), r"'atoms' has shape \(2, 4\)"),
        ("atoms", np.zeros((2, 3), np.float64), "'atoms' has dtype float64"),
        ("atoms", np.zeros(6, np.uint16), "'atoms' has 1 dimensions"),
    ],
)
def test_signal_data_refuses_what_was_not_declared(label, value, problem) -> None:
    shot = context({"cam": {"atoms": IMAGE}})
    with pytest.raises(DataDeclarationError, match=problem) as info:
        shot.signal_data(label, value)
    assert info.value.device == "cam" and isinstance(info.value, ShotContextError)


def test_declared_data_and_undeclaring_devices_are_signalled() -> None:
    shot = context({"cam": {"atoms": IMAGE}})
    shot.signal_data("atoms", np.zeros((2, 3), np.uint16))
    free = context({"cam": {}})  # a device that declares nothing keeps signalling any label
    free.signal_data("anything", 1.5)


def test_a_quantity_is_stored_in_the_declared_unit_and_one_of_another_dimension_is_refused() -> None:
    units = pint.UnitRegistry()  # a driver's own registry
    trace = DataDeclaration(unit="V", dims=("time",), shape=(3,), dtype="float32")
    shot = context({"cam": {"trace": trace, "power": DataDeclaration(unit="W")}})
    shot.signal_data("trace", units.Quantity(np.array([1.0, 2.0, 3.0]), "mV"))
    with pytest.raises(DataDeclarationError, match=r"'power' is in m, declared W"):
        shot.signal_data("power", units.Quantity(2.0, "m"))
    shot.signal_data("power", units.Quantity(5.0, "mW"))
    stored = anyio.run(shot.wait_data, "cam.trace")
    assert stored.dtype == np.float32
    np.testing.assert_allclose(stored, [1e-3, 2e-3, 3e-3], rtol=1e-6)
    assert anyio.run(shot.wait_data, "cam.power") == pytest.approx(5e-3)
