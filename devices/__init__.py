"""The instrument model of shotflow and its registry of device types.

An instrument is a :class:`DeviceConfiguration` (user settings), a
:class:`DeviceCompiler` (settings + shot parameters -> instructions), a
:class:`Device` (the connection, entered once per run) and a
:class:`DeviceController` (runs one shot on the device), registered with
:func:`register_device`. Simulated instruments live in :mod:`devices.sim`.
"""

from ._configuration import DeviceConfiguration, Expression, ExpressionSpec, expression
from ._errors import (
    DeviceError,
    DeviceNotUsed,
    DeviceTimeoutError,
    ShotCompilationError,
    ShotflowError,
    UnknownDeviceTypeError,
)
from ._shot import (
    AnalogLane,
    CameraLane,
    DigitalLane,
    Lane,
    Ramp,
    SequenceContext,
    Shot,
    ShotTimeline,
)

__all__ = [
    # configuration
    "DeviceConfiguration",
    "Expression",
    "ExpressionSpec",
    "expression",
    # shots and timelines
    "AnalogLane",
    "CameraLane",
    "DigitalLane",
    "Lane",
    "Ramp",
    "SequenceContext",
    "Shot",
    "ShotTimeline",
    # errors
    "DeviceError",
    "DeviceNotUsed",
    "DeviceTimeoutError",
    "ShotCompilationError",
    "ShotflowError",
    "UnknownDeviceTypeError",
]
