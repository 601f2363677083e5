"""The instrument model of shotflow and its registry of device types.

An instrument is a :class:`DeviceConfiguration` (user settings), a
:class:`DeviceCompiler` (settings + shot parameters -> instructions), a
:class:`Device` (the connection, entered once per run) and a
:class:`DeviceController` (runs one shot on the device), registered with
:func:`register_device`. Simulated instruments live in :mod:`devices.sim`.
"""

from ._configuration import DeviceConfiguration, Expression, ExpressionSpec, expression
from ._data import Coordinate, DataDeclaration
from ._device import Device, DeviceCompiler, DeviceController
from ._errors import (
    DataDeclarationError,
    DeviceConfigurationError,
    DeviceError,
    DeviceNotUsed,
    DeviceRegistrationError,
    DeviceTimeoutError,
    ShotCompilationError,
    ShotContextError,
    ShotflowError,
    UnknownDeviceTypeError,
)
from ._registry import ENTRY_POINT_GROUP, DeviceType, get_device_type, known_device_types, register_device
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
from ._shot_context import ShotContext, ShotExchange, run_blocking

__all__ = [
    # instrument model
    "Device",
    "DeviceCompiler",
    "DeviceConfiguration",
    "DeviceController",
    "Expression",
    "ExpressionSpec",
    "expression",
    # declared data
    "Coordinate",
    "DataDeclaration",
    # registry
    "ENTRY_POINT_GROUP",
    "DeviceType",
    "get_device_type",
    "known_device_types",
    "register_device",
    # shots and timelines
    "AnalogLane",
    "CameraLane",
    "DigitalLane",
    "Lane",
    "Ramp",
    "SequenceContext",
    "Shot",
    "ShotTimeline",
    # running a shot
    "ShotContext",
    "ShotExchange",
    "run_blocking",
    # errors
    "DataDeclarationError",
    "DeviceConfigurationError",
    "DeviceError",
    "DeviceNotUsed",
    "DeviceRegistrationError",
    "DeviceTimeoutError",
    "ShotCompilationError",
    "ShotContextError",
    "ShotflowError",
    "UnknownDeviceTypeError",
]
