"""The sequence language: the spec, its expressions with units, the loops and the shots they make.

A spec is analysed once into a frozen :class:`SequencePlan` (:func:`plan_sequence`)
that validation, counting, units, the shot iteration, the ``plan`` text and the
:class:`SequenceRuntime` read. New loop kinds go in ``_steps.py`` (see its docstring).

Imports neither Prefect nor zarr: the CLI's light commands and the compile workers load only this.
"""

from ._context import SequenceRuntime
from ._expressions import CompiledExpression, compile_expression
from ._iteration import calibrated_references, count_shots, evaluate_globals, iter_shots, parameter_units
from ._live_plot_field import LivePlot
from ._load import load_spec, load_spec_text
from ._overrides import apply_overrides
from ._plan import Axis, SequencePlan, plan_sequence
from ._plan_text import format_value, plan_lines
from ._spec import Execution, Retry, SequenceSpec, Storage
from ._steps import Arange, Declare, Linspace, Repeat, Values
from ._timeline import AnalogLaneSpec, CameraLaneSpec, DigitalLaneSpec, Timeline, TimelineStep

__all__ = [
    # the spec
    "AnalogLaneSpec",
    "Arange",
    "CameraLaneSpec",
    "Declare",
    "DigitalLaneSpec",
    "Execution",
    "Linspace",
    "Repeat",
    "Retry",
    "SequenceSpec",
    "Storage",
    "LivePlot",
    "Timeline",
    "TimelineStep",
    "Values",
    "apply_overrides",
    "load_spec",
    "load_spec_text",
    # its plan and the readers of the plan
    "Axis",
    "SequencePlan",
    "calibrated_references",
    "count_shots",
    "evaluate_globals",
    "iter_shots",
    "parameter_units",
    "plan_lines",
    "plan_sequence",
    # expressions and evaluation
    "CompiledExpression",
    "SequenceRuntime",
    "compile_expression",
    "format_value",
]
