"""The sequence layer of shotflow: the spec language, its expressions and iteration, the CLI.

A :class:`SequenceSpec` (loaded with :func:`load_spec`) describes global
parameters, nested loops of unit-aware expressions, the shot timeline, the
devices and how to run and store the scan. :func:`iter_shots` walks it lazily;
:class:`SequenceRuntime` evaluates expressions for device compilers.
"""

from ._context import SequenceRuntime
from ._errors import CalibrationError, DeviceBusyError, ExpressionError, SequenceFailedError, SpecError
from ._expressions import CompiledExpression, compile_expression
from ._iteration import count_shots, evaluate_globals, iter_shots, parameter_units
from ._load import load_spec
from ._plan import format_value, plan_lines
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
from ._store_path import resolve_store_path

# Names that need Prefect load on first use: importing the sequence language
# (e.g. in compile worker processes) stays fast.
_LAZY = {
    "load_calibrated": "._calibrated",
    "store_calibrated": "._calibrated",
    "calibrate_resonance": "._calibration",
    "calibrate_rabi": "._calibration",
    "CalibrationResult": "._calibration",
    "device_busy_report": "._hardware_lock",
    "device_limit_name": "._hardware_lock",
    "device_lock": "._hardware_lock",
    "Progress": "._progress",
    "progress_listener": "._progress",
    "SequenceResult": "._run_sequence",
    "run_sequence": "._run_sequence",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value

__all__ = [
    # running
    "run_sequence",
    "SequenceResult",
    "Progress",
    "progress_listener",
    "load_calibrated",
    "store_calibrated",
    # calibrations
    "calibrate_resonance",
    "calibrate_rabi",
    "CalibrationResult",
    # hardware locks
    "device_lock",
    "device_limit_name",
    "device_busy_report",
    # the spec
    "SequenceSpec",
    "load_spec",
    "Declare",
    "Linspace",
    "Arange",
    "Values",
    "Repeat",
    "Timeline",
    "TimelineStep",
    "DigitalLaneSpec",
    "AnalogLaneSpec",
    "CameraLaneSpec",
    "Execution",
    "Retry",
    "Storage",
    "resolve_store_path",
    # expressions
    "CompiledExpression",
    "compile_expression",
    # iteration and evaluation
    "iter_shots",
    "count_shots",
    "parameter_units",
    "evaluate_globals",
    "SequenceRuntime",
    # planning
    "plan_lines",
    "format_value",
    # errors
    "SpecError",
    "ExpressionError",
    "SequenceFailedError",
    "DeviceBusyError",
    "CalibrationError",
]
