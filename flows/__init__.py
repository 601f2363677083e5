"""The sequence layer of shotflow: the spec language, its expressions and iteration, the CLI.

A :class:`SequenceSpec` (loaded with :func:`load_spec`) describes global
parameters, nested loops of unit-aware expressions, the shot timeline, the
devices and how to run and store the scan. :func:`iter_shots` walks it lazily;
:class:`SequenceRuntime` evaluates expressions for device compilers.
"""

from ._context import SequenceRuntime
from ._calibrated import load_calibrated, store_calibrated
from ._errors import DeviceBusyError, ExpressionError, SequenceFailedError, SpecError
from ._hardware_lock import device_busy_report, device_limit_name, device_lock
from ._expressions import CompiledExpression, compile_expression
from ._iteration import count_shots, evaluate_globals, iter_shots, parameter_units
from ._load import load_spec
from ._plan import format_value, plan_lines
from ._progress import Progress, progress_listener
from ._run_sequence import SequenceResult, run_sequence
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

__all__ = [
    # running
    "run_sequence",
    "SequenceResult",
    "Progress",
    "progress_listener",
    "load_calibrated",
    "store_calibrated",
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
]
