"""What a device declares about each data label it signals: unit, dims, shape, dtype, coordinates."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._errors import DataDeclarationError

__all__ = ["Coordinate", "DataDeclaration", "check_data"]


def _check_unit(unit: str, what: str) -> None:
    if unit == "":
        return
    import pint  # here, not at import: commands that declare no data (show, --help) need not load it

    try:
        pint.get_application_registry().parse_units(unit)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AssertionError, ValueError) as exc:
        raise ValueError(f"{what}: unit {unit!r} is not a unit pint knows ({exc})") from exc


@dataclass(frozen=True)
class Coordinate:
    """The coordinate of one dimension: explicit ``values``, or ``start + step * i``; in ``unit``."""

    unit: str = ""
    values: tuple[float, ...] | None = None
    start: float = 0.0
    step: float | None = None
    long_name: str = ""

    def __post_init__(self) -> None:
        if (self.values is None) == (self.step is None):
            raise ValueError("a coordinate has either values or a step, not both nor neither")
        if self.values is not None:
            object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        _check_unit(self.unit, "coordinate")

    def array(self, size: int) -> np.ndarray:
        """The coordinate's ``size`` values (float64); ValueError if explicit values have another length."""
        if self.values is not None:
            if len(self.values) != size:
                raise ValueError(f"coordinate has {len(self.values)} values for a dimension of size {size}")
            return np.asarray(self.values, dtype=np.float64)
        assert self.step is not None
        return self.start + self.step * np.arange(size, dtype=np.float64)


@dataclass(frozen=True)
class DataDeclaration:
    """One data label as its device declares it, once per sequence, before the first shot.

    ``unit`` is pint-parsable text ("" for dimensionless), ``dims`` names each dimension
    (``()`` for a scalar), ``shape`` fixes the sizes (None: any, but fixed by the first shot),
    ``dtype`` the numpy dtype, ``coords`` a :class:`Coordinate` per dimension (any subset).
    Raises ValueError naming the problem when inconsistent.
    """

    unit: str = ""
    dims: tuple[str, ...] = ()
    dtype: str = "float64"
    shape: tuple[int, ...] | None = None
    coords: Mapping[str, Coordinate] = field(default_factory=dict)
    long_name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(self.dims))
        if len(set(self.dims)) != len(self.dims):
            raise ValueError(f"dims {self.dims} repeat a name")
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
            if len(self.shape) != len(self.dims):
                raise ValueError(f"shape {self.shape} has {len(self.shape)} sizes for dims {self.dims}")
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)
        unknown = set(self.coords) - set(self.dims)
        if unknown:
            raise ValueError(f"coords {sorted(unknown)} name no dimension of {self.dims}")
        object.__setattr__(self, "coords", dict(self.coords))
        if self.shape is not None:
            for dim, size in zip(self.dims, self.shape, strict=True):
                if dim in self.coords:
                    self.coords[dim].array(size)
        _check_unit(self.unit, "data")


def check_data(device: str, label: str, declaration: DataDeclaration, value: Any) -> Any:
    """``value`` as stored; :class:`DataDeclarationError` if it does not fit ``declaration``.

    A pint Quantity (of any registry) is converted to the declared unit and dtype; one of
    another dimension is refused. A plain value is taken to be in the declared unit.
    """
    pint = sys.modules.get("pint")  # a Quantity exists only once pint is imported
    if pint is not None and isinstance(value, pint.Quantity):
        unit = declaration.unit or "dimensionless"
        try:
            magnitude = np.asarray(value.to(unit).magnitude)
        except pint.errors.DimensionalityError:
            raise DataDeclarationError(device, f"data {label!r} is in {value.units:~}, declared {unit}") from None
        target = np.dtype(declaration.dtype)
        value = magnitude.astype(target) if np.can_cast(magnitude.dtype, target, "same_kind") else magnitude
    array = np.asarray(value)
    problem = None
    if array.ndim != len(declaration.dims):
        problem = f"has {array.ndim} dimensions, declared {len(declaration.dims)} {declaration.dims}"
    elif declaration.shape is not None and array.shape != declaration.shape:
        problem = f"has shape {array.shape}, declared {declaration.shape}"
    elif array.dtype != np.dtype(declaration.dtype):
        problem = f"has dtype {array.dtype}, declared {declaration.dtype}"
    if problem is not None:
        raise DataDeclarationError(device, f"data {label!r} {problem}")
    return value
