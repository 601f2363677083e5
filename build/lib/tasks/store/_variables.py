"""What each data variable is, as its device declared it: units, long name, dims and coordinates.

The run hands the store one JSON-safe mapping per data label (``<device>.<label>``, or
``analysis.<name>.<field>``), kept in the group attribute ``data_layout``::

    {"units": "count", "long_name": "picture atoms", "dims": ["y", "x"],
     "coords": {"x": {"units": "m", "long_name": "x", "start": 0.0, "step": 6.5e-06}}}

A coordinate has explicit ``values`` or ``start`` + ``step`` * i. A label with no entry is
stored as before (its name for long name, no units, dims ``<label>.y``, ``<label>.x``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["DIMENSIONLESS", "checked_layout", "coordinate_values", "variable_attrs"]

DIMENSIONLESS = "1"
"""The CF ``units`` of a dimensionless quantity (pint reads it as dimensionless)."""


def checked_layout(layout: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """``layout`` as plain JSON data; TypeError naming the label when an entry is not."""
    result: dict[str, dict[str, Any]] = {}
    for label, entry in (layout or {}).items():
        try:
            result[str(label)] = json.loads(json.dumps(dict(entry)))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"data layout of {label!r} is not JSON-safe: {exc}") from exc
    return result


def variable_attrs(entry: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """The ``long_name`` and ``units`` attributes of variable ``name`` (no ``units`` if undeclared)."""
    if entry is None:
        return {"long_name": name}
    attrs: dict[str, Any] = {"long_name": str(entry.get("long_name") or name)}
    if "units" in entry:
        attrs["units"] = str(entry["units"]) or DIMENSIONLESS
    return attrs


def coordinate_values(coord: Mapping[str, Any], size: int) -> np.ndarray:
    """The ``size`` float64 values of a declared coordinate; ValueError if explicit values have another length."""
    if coord.get("values") is not None:
        values = np.asarray(coord["values"], dtype=np.float64)
        if values.shape != (size,):
            raise ValueError(f"coordinate has {values.size} values for a dimension of size {size}")
        return values
    return float(coord.get("start", 0.0)) + float(coord["step"]) * np.arange(size, dtype=np.float64)
