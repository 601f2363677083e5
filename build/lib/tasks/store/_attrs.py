"""The attributes of a results store: netCDF-safe on disk, decoded for readers.

The rule, for the group's attributes and every variable's: on disk each attribute is a
string, an int or float, or a list of ints or floats, so that
``xarray.open_zarr(store).to_netcdf(file)`` keeps all of them.

- Structures (``error``, ``parameter_units``, ``axes``, ``history``, ``data_layout``) are JSON text.
- An absent value is not written: a store without an error has no ``error`` attribute,
  a scan of unknown length no ``expected_shots``. Nothing is ever stored as null.

:func:`decode_attrs` gives readers the structures back (``error`` a dict or None,
``parameter_units`` and ``data_layout`` dicts, ``expected_shots`` an int or None, ``axes`` a list or
None, ``history`` a list, empty for stores older than it). Stores of format 1 held these
as JSON objects and nulls; they decode the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["AttrValue", "decode_attrs", "encode_attrs"]

AttrValue = str | int | float | list[int] | list[float]
"""What an attribute may hold on disk."""

JSON_ATTRS = ("error", "parameter_units", "axes", "history", "data_layout", "overrides")
"""Group attributes stored as JSON text."""
OPTIONAL_ATTRS = ("error", "expected_shots", "axes")
EMPTY_OMITTED = ("overrides",)
"""Group attributes omitted when empty (a run without overrides records none)."""
"""Group attributes omitted when absent; decoded as None then."""


def encode_attrs(attrs: Mapping[str, Any]) -> dict[str, AttrValue]:
    """``attrs`` as stored: None values dropped, :data:`JSON_ATTRS` as JSON text.

    Raises TypeError naming the attribute if a value has no netCDF form (a bool, a dict
    that is not in :data:`JSON_ATTRS`, a list of strings, ...).
    """
    encoded: dict[str, AttrValue] = {}
    for key, value in attrs.items():
        if value is None or (key in EMPTY_OMITTED and not value):
            continue
        if key in JSON_ATTRS:
            value = json.dumps(value, default=str)
        if not _is_netcdf_safe(value):
            raise TypeError(f"store attribute {key!r} = {value!r} is not a string, a number or a list of numbers")
        encoded[key] = value
    return encoded


def decode_attrs(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The group attributes ``stored`` with their structures decoded.

    ``error`` is a dict or None, ``parameter_units`` a dict, ``expected_shots`` an int or
    None, ``axes`` a list or None, ``history`` a list; every other attribute is returned as
    stored. JSON text that does not parse is kept as text (``error`` then becomes
    ``{"message": text}``).
    """
    attrs = dict(stored)
    for key in JSON_ATTRS:
        value = attrs.get(key)
        if isinstance(value, str):
            try:
                attrs[key] = json.loads(value)
            except ValueError:
                attrs[key] = {"message": value} if key == "error" else value
    for key in OPTIONAL_ATTRS:
        attrs.setdefault(key, None)
    if not isinstance(attrs.get("parameter_units"), dict):
        attrs["parameter_units"] = {}
    if not isinstance(attrs.get("history"), list):
        attrs["history"] = []
    if not isinstance(attrs.get("data_layout"), dict):
        attrs["data_layout"] = {}
    if not isinstance(attrs.get("overrides"), dict):
        attrs["overrides"] = {}
    return attrs


def _is_netcdf_safe(value: object) -> bool:
    if isinstance(value, bool):
        return False  # netCDF has no boolean attribute
    if isinstance(value, (str, int, float)):
        return True
    return isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
