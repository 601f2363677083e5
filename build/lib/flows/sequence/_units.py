"""Units: the pint registry, unit names, SI magnitudes and SI unit strings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pint

from ._math import CONSTANTS

__all__ = ["Quantity", "is_unit", "si_magnitude", "show_value", "si_unit", "unit_named", "ureg"]

ureg: pint.UnitRegistry = pint.get_application_registry()
Quantity = ureg.Quantity

Value = Any  # pint Quantity, float or bool


@lru_cache(maxsize=4096)
def unit_named(name: str) -> pint.Unit | None:
    """The pint unit called ``name`` (prefixes allowed), or ``None``."""
    if name.startswith("_") or name in CONSTANTS:
        return None
    try:
        return ureg.parse_units(name)
    except Exception:  # noqa: BLE001 - pint raises several unrelated error types for bad names
        return None


def is_unit(name: str) -> bool:
    """Whether ``name`` is a unit pint knows (``"MHz"``, ``"ms"``, ``"percent"``)."""
    return unit_named(name) is not None


_PREFERRED_UNITS = ("Hz", "s", "m", "kg", "A", "K", "V", "W", "T", "N", "J", "ohm", "F", "mol", "cd", "rad")


@lru_cache(maxsize=256)
def _si_unit_for(dimensionality: str) -> str:
    for name in _PREFERRED_UNITS:
        unit = ureg.parse_units(name)
        if str(unit.dimensionality) == dimensionality:
            return name
    return ""


def si_unit(value: Value) -> str:
    """The SI unit string of ``value``: ``"Hz"``, ``"s"``, ``"m / s"``, ``""`` if dimensionless."""
    if not isinstance(value, pint.Quantity) or value.dimensionless:
        return ""
    preferred = _si_unit_for(str(value.dimensionality))
    if preferred:
        return preferred
    return f"{value.to_base_units().units:~}"


def si_magnitude(value: Value) -> float | bool:
    """The magnitude of ``value`` in SI base units (a float), or the bool itself."""
    if isinstance(value, bool):
        return value
    if isinstance(value, pint.Quantity):
        return float(value.to_base_units().magnitude)  # percent -> 0.01, MHz -> 1e6
    return float(value)


def show_value(value: Value) -> str:
    """A value for a message: ``2 MHz``, ``0.5 (dimensionless)``, ``True``."""
    if isinstance(value, pint.Quantity):
        if value.dimensionless:
            return f"{value.to('dimensionless').magnitude:g} (dimensionless)"
        return f"{value:~g}"
    return repr(value)
