"""Numbers with units as a physicist reads them: ``2e6, "Hz"`` -> ``"2 MHz"``."""

from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pint

__all__ = ["compact_unit", "format_quantity"]


@cache
def _registry() -> pint.ApplicationRegistry:
    import pint  # imported here: compile worker processes import tasks and need not pay for it

    return pint.get_application_registry()  # the registry flows parses expressions with


def _quantity(value: Any, unit: str) -> pint.Quantity | None:
    import pint

    try:
        return _registry().Quantity(value, unit)
    except (pint.errors.PintError, ValueError, AttributeError, TypeError):
        return None  # a unit this registry does not know: shown as stored


def format_quantity(value: float | bool, unit: str, digits: int = 6) -> str:
    """``value`` (in ``unit``, e.g. SI) with an engineering prefix: ``-2e6, "Hz"`` ->
    ``"-2 MHz"``, ``1e-4, "W"`` -> ``"100 µW"``; bools as ``True``/``False``, plain numbers
    (``unit`` empty) and non-finite values as they are; ``digits`` significant digits. Never raises."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    value = float(value)
    if not unit:
        return f"{value:.{digits}g}"
    quantity = _quantity(value, unit) if math.isfinite(value) else None
    if quantity is None:
        return f"{value:.{digits}g} {unit}"
    if value != 0:
        quantity = quantity.to_compact()
    return f"{quantity:~.{digits}g}"


def compact_unit(values: np.ndarray, unit: str) -> tuple[np.ndarray, str]:
    """``values`` (in ``unit``) rescaled to the prefixed unit that suits their largest
    magnitude, and that unit's symbol: Hz values up to 2e6 -> (values / 1e6, ``"MHz"``).
    Returns them unchanged (and ``unit``) when there is no unit or nothing finite."""
    finite = np.abs(values[np.isfinite(values)])
    largest = float(finite.max()) if finite.size else 0.0
    quantity = _quantity(largest, unit) if unit and largest > 0 else None
    if quantity is None:
        return values, unit
    target = quantity.to_compact().units
    return _registry().Quantity(values, unit).to(target).magnitude, f"{target:~}"
