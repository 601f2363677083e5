"""Per-shot analyses: registered types that a spec names with their settings, run off the critical path.

An analysis is an :class:`Analysis` subclass (its settings, the data label it reads, its
declared :class:`Output` values and a pure ``compute``), registered with
:func:`register_analysis` from a ``shotflow.analyses`` entry point, as instruments are. A spec
names a registered type only (``analyses: {atoms: {type: roi_sum, data: camera.atoms}}``),
never a code path. Built-ins: ``roi_sum``, ``gaussian_2d``, ``peak``.
"""

from ._analysis import Analysis, Output
from ._builtins import Gaussian2D, Peak, RoiSum, register_builtins
from ._errors import AnalysisError, AnalysisRegistrationError, UnknownAnalysisTypeError
from ._registry import ANALYSIS_ENTRY_POINT_GROUP, get_analysis_type, known_analysis_types, register_analysis

__all__ = [
    "ANALYSIS_ENTRY_POINT_GROUP",
    "Analysis",
    "AnalysisError",
    "AnalysisRegistrationError",
    "Gaussian2D",
    "Output",
    "Peak",
    "RoiSum",
    "UnknownAnalysisTypeError",
    "get_analysis_type",
    "known_analysis_types",
    "register_analysis",
    "register_builtins",
]
