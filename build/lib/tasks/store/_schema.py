"""What the records of one store must agree on: each data label's shape and dtype, each parameter's kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tasks.records import ShotRecord, ShotStatus

from ._arrays import StoreArrays
from ._errors import StoreError, StoreShapeError
from ._layout import RESERVED_NAMES

__all__ = ["RecordSchema"]


@dataclass
class RecordSchema:
    """Shapes/dtypes of data labels and kinds of parameters seen so far; checks new records."""

    expected_shots: int | None
    data: dict[str, tuple[tuple[int, ...], np.dtype]] = field(default_factory=dict)
    parameters: dict[str, bool] = field(default_factory=dict)  # name -> is bool

    @classmethod
    def from_arrays(cls, arrays: StoreArrays, expected_shots: int | None) -> RecordSchema:
        schema = cls(expected_shots)
        for name, array in arrays.arrays.items():
            if name in arrays.parameters:
                schema.parameters[name] = array.dtype == np.dtype(bool)
            elif name not in RESERVED_NAMES:
                schema.data[name] = (tuple(array.shape[1:]), array.dtype)
        return schema

    def check(self, record: ShotRecord) -> None:
        """Raise StoreShapeError/StoreError if ``record`` does not fit; register new names."""
        if record.index < 0 or (self.expected_shots is not None and record.index >= self.expected_shots):
            raise StoreError(f"shot index {record.index} is outside 0..{self.expected_shots}")
        new_data: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        if record.status != ShotStatus.FAILED:
            for label, value in record.data.items():
                new_data[label] = self._check_data(record.index, label, np.asarray(value))
        new_params: dict[str, bool] = {}
        for name, value in record.parameters.items():
            new_params[name] = self._check_parameter(record.index, name, value)
        clash = (set(new_data) & (set(new_params) | set(self.parameters))) | (set(new_params) & set(self.data))
        if clash:
            name = min(clash)
            raise StoreShapeError(
                f"shot {record.index}: {name!r} is both a parameter and a data label",
                label=name,
            )
        self.data.update(new_data)
        self.parameters.update(new_params)

    def _check_data(self, index: int, label: str, value: np.ndarray) -> tuple[tuple[int, ...], np.dtype]:
        if label in RESERVED_NAMES:
            raise StoreShapeError(
                f"shot {index}: data label {label!r} is a reserved store name",
                label=label,
            )
        if value.dtype.kind not in "biufc":
            raise StoreShapeError(
                f"shot {index}: data {label!r} has dtype {value.dtype}; the store keeps numeric or bool data",
                label=label,
            )
        known = self.data.get(label)
        if known is not None and (value.shape, value.dtype) != known:
            raise StoreShapeError(
                f"shot {index}: data {label!r} has shape {value.shape} dtype {value.dtype}, but earlier "
                f"shots stored shape {known[0]} dtype {known[1]}; a label keeps one shape and dtype",
                label=label,
            )
        return value.shape, value.dtype

    def _check_parameter(self, index: int, name: str, value: Any) -> bool:
        if name in RESERVED_NAMES:
            raise StoreShapeError(f"shot {index}: parameter {name!r} is a reserved store name", label=name)
        if not isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
            raise StoreShapeError(
                f"shot {index}: parameter {name!r} = {value!r} is not a number or bool",
                label=name,
            )
        is_bool = isinstance(value, (bool, np.bool_))
        if self.parameters.get(name, is_bool) != is_bool:
            raise StoreShapeError(
                f"shot {index}: parameter {name!r} switched between bool and number",
                label=name,
            )
        return is_bool
