"""The sequence layer of shotflow.

This package exports the sequence language (:mod:`flows.sequence`, which imports
neither Prefect nor zarr) and the project's flow-level errors. Running lives in
:mod:`flows.run`, hardware locks in :mod:`flows.locks`, calibrations in
:mod:`flows.calibration` and the command line in :mod:`flows.cli`.
"""

from __future__ import annotations

import importlib
from typing import Any

_ERRORS = ("CalibrationError", "DeviceBusyError", "ExpressionError", "SequenceFailedError", "SpecError")
_SEQUENCE = (
    "AnalogLaneSpec",
    "Arange",
    "CameraLaneSpec",
    "CompiledExpression",
    "Declare",
    "DigitalLaneSpec",
    "Execution",
    "Linspace",
    "Repeat",
    "Retry",
    "SequenceRuntime",
    "SequenceSpec",
    "Storage",
    "Timeline",
    "TimelineStep",
    "Values",
    "compile_expression",
    "count_shots",
    "evaluate_globals",
    "format_value",
    "iter_shots",
    "load_spec",
    "parameter_units",
    "plan_lines",
)
_HOMES = {**dict.fromkeys(_ERRORS, "._errors"), **dict.fromkeys(_SEQUENCE, ".sequence")}


def __getattr__(name: str) -> Any:
    """The exported names, imported on first use: ``shotflow --help`` and ``show`` need neither the
    sequence language nor pint's unit registry, which ``import flows`` used to load eagerly."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'flows' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = sorted(_HOMES)
