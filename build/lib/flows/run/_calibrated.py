"""Calibrated values: stored in Prefect Variables, referenced in expressions as ``calibrated.NAME``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prefect.variables import Variable

from flows._errors import SpecError
from flows.sequence import calibrated_references

__all__ = ["CalibratedValue", "load_calibrated", "store_calibrated", "variable_name"]

logger = logging.getLogger(__name__)

_PREFIX = "calibrated_"


def variable_name(name: str) -> str:
    """The Prefect Variable that holds calibration ``name``."""
    return _PREFIX + name.lower()


class CalibratedValue(dict[str, Any]):
    """A calibration result: ``value`` (SI magnitude), ``unit``, ``uncertainty``, ``timestamp``, ``flow_run``."""


async def load_calibrated(spec: Any) -> dict[str, str]:
    """Read every calibration the spec references, as expression strings (e.g. ``"80.1e6 Hz"``).

    Raises :class:`SpecError` naming a calibration that was never stored, before
    any device is touched.
    """
    values: dict[str, str] = {}
    for name in sorted(calibrated_references(spec)):
        stored = await Variable.aget(variable_name(name), default=None)
        if not isinstance(stored, dict) or "value" not in stored:
            raise SpecError(
                f"calibrated.{name}: no calibrated value stored (Prefect variable "
                f"{variable_name(name)!r}); run the calibration first"
            )
        values[name] = f"{float(stored['value'])!r} {stored.get('unit', '')}".strip()
        logger.info("using calibrated.%s = %s (from %s)", name, values[name], stored.get("timestamp"))
    return values


async def store_calibrated(
    name: str, value: float, unit: str, uncertainty: float, flow_run: str | None = None
) -> dict[str, Any]:
    """Store a calibration result (SI ``value`` in ``unit``), overwriting the previous one."""
    record = {
        "value": float(value),
        "unit": unit,
        "uncertainty": float(uncertainty),
        "timestamp": datetime.now(UTC).isoformat(),
        "flow_run": flow_run,
    }
    await Variable.aset(variable_name(name), record, overwrite=True)
    return record
