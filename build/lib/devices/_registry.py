"""The registry of device types, filled by plugins through entry points."""

from __future__ import annotations

import builtins
import importlib.metadata
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from ._configuration import DeviceConfiguration
from ._device import Device, DeviceCompiler, DeviceController
from ._errors import DeviceRegistrationError, UnknownDeviceTypeError

__all__ = [
    "ENTRY_POINT_GROUP",
    "DeviceType",
    "get_device_type",
    "known_device_types",
    "register_device",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "shotflow.devices"
"""Entry point group; each entry point is a zero-argument callable that calls :func:`register_device`."""


@dataclass(frozen=True)
class DeviceType:
    """The four classes that make up one instrument type."""

    type: str
    configuration: type[DeviceConfiguration]
    compiler: type[DeviceCompiler]
    device: type[Device]
    controller: type[DeviceController]


_lock = threading.RLock()
_types: dict[str, DeviceType] = {}
_entry_points_loaded = False


def register_device(
    type: str,
    *,
    configuration: type[DeviceConfiguration],
    compiler: type[DeviceCompiler],
    device: type[Device],
    controller: type[DeviceController],
) -> DeviceType:
    """Register the classes of device type ``type`` and return its :class:`DeviceType`.

    Registering the same classes again is a no-op. Raises
    :class:`DeviceRegistrationError` if ``type`` is already registered with other
    classes, if a class has the wrong base, or if the configuration's ``type``
    field defaults to another name.
    """
    for value, base, role in (
        (configuration, DeviceConfiguration, "configuration"),
        (compiler, DeviceCompiler, "compiler"),
        (device, Device, "device"),
        (controller, DeviceController, "controller"),
    ):
        if not (isinstance(value, builtins.type) and issubclass(value, base)):
            raise DeviceRegistrationError(
                f"device type {type!r}: {role} {value!r} is not a subclass of {base.__name__}"
            )
    field = configuration.model_fields.get("type")
    if field is not None and isinstance(field.default, str) and field.default != type:
        raise DeviceRegistrationError(
            f"device type {type!r}: {configuration.__name__}.type defaults to {field.default!r}; "
            f"declare type: Literal[{type!r}] = {type!r}"
        )
    new = DeviceType(type, configuration, compiler, device, controller)
    with _lock:
        old = _types.get(type)
        if old is not None and old != new:
            raise DeviceRegistrationError(
                f"device type {type!r} is already registered with other classes "
                f"({old.configuration.__module__}.{old.configuration.__qualname__}, ...)"
            )
        _types[type] = new
    logger.debug("registered device type %r", type)
    return new


def get_device_type(type: str) -> DeviceType:
    """Return the registered :class:`DeviceType` named ``type`` (loading plugins first).

    Raises :class:`UnknownDeviceTypeError` listing the known types.
    """
    _load_entry_points()
    with _lock:
        try:
            return _types[type]
        except KeyError:
            raise UnknownDeviceTypeError(type, _types) from None


def known_device_types() -> list[str]:
    """Return the sorted names of every registered device type (loading plugins first)."""
    _load_entry_points()
    with _lock:
        return sorted(_types)


def _entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _load_entry_points() -> None:
    """Call every ``shotflow.devices`` entry point once per process; a failing plugin is logged and skipped."""
    global _entry_points_loaded
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
        for entry_point in _entry_points():
            try:
                entry_point.load()()
            except Exception:
                logger.exception(
                    "device plugin %r (%s) failed to register; its device types are unavailable",
                    entry_point.name,
                    entry_point.value,
                )
