"""The sequence language: the spec, its expressions with units, the loops and the shots they make.

Imports neither Prefect nor zarr: the CLI's light commands and the compile workers load only this.
"""

from ._context import SequenceRuntime
from ._expressions import CompiledExpression, compile_expression
from ._iteration import count_shots, evaluate_globals, iter_shots, parameter_units
from ._load import load_spec
from ._plan_text import format_value, plan_lines
from ._spec import (
    AnalogLaneSpec,
    Arange,
    CameraLaneSpec,
    Declare,
    DigitalLaneSpec,
    Execution,
    Linspace,
    Repeat,
    Retry,
    SequenceSpec,
    Storage,
    Timeline,
    TimelineStep,
    Values,
)
from ._validate import calibrated_references

__all__ = [
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
    "calibrated_references",
    "compile_expression",
    "count_shots",
    "evaluate_globals",
    "format_value",
    "iter_shots",
    "load_spec",
    "parameter_units",
    "plan_lines",
]
