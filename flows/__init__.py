"""The sequence layer of shotflow.

This package exports the sequence language (:mod:`flows.sequence`, which imports
neither Prefect nor zarr) and the project's flow-level errors. Running lives in
:mod:`flows.run`, hardware locks in :mod:`flows.locks`, calibrations in
:mod:`flows.calibration` and the command line in :mod:`flows.cli`.
"""

from ._errors import CalibrationError, DeviceBusyError, ExpressionError, SequenceFailedError, SpecError
from .sequence import (
    AnalogLaneSpec,
    Arange,
    CameraLaneSpec,
    CompiledExpression,
    Declare,
    DigitalLaneSpec,
    Execution,
    Linspace,
    Repeat,
    Retry,
    SequenceRuntime,
    SequenceSpec,
    Storage,
    Timeline,
    TimelineStep,
    Values,
    compile_expression,
    count_shots,
    evaluate_globals,
    format_value,
    iter_shots,
    load_spec,
    parameter_units,
    plan_lines,
)

__all__ = [
    "AnalogLaneSpec",
    "Arange",
    "CalibrationError",
    "CameraLaneSpec",
    "CompiledExpression",
    "Declare",
    "DeviceBusyError",
    "DigitalLaneSpec",
    "Execution",
    "ExpressionError",
    "Linspace",
    "Repeat",
    "Retry",
    "SequenceFailedError",
    "SequenceRuntime",
    "SequenceSpec",
    "SpecError",
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
]
