"""The error hierarchy of shotflow, rooted in :class:`ShotflowError`.

``tasks`` and ``flows`` define their own errors as subclasses of
:class:`ShotflowError`, so ``except ShotflowError`` catches every project error.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
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


class ShotflowError(Exception):
    """Root of every error raised by shotflow."""


class DeviceError(ShotflowError):
    """An instrument failed; ``device`` names it.

    ``retryable`` tells the engine whether re-running the shot may succeed
    (``False`` here; subclasses such as :class:`DeviceTimeoutError` override it).
    """

    retryable: bool = False

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"device {device!r}: {message}")
        self.device = device
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.device, self.message))


class DeviceTimeoutError(DeviceError):
    """An instrument did not answer in time; retryable by default."""

    retryable: bool = True


class ShotCompilationError(ShotflowError):
    """Compiling shot ``shot_index`` for ``device`` failed; the cause is chained."""

    def __init__(self, shot_index: int, device: str, message: str) -> None:
        super().__init__(f"shot {shot_index}, device {device!r}: {message}")
        self.shot_index = shot_index
        self.device = device
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.shot_index, self.device, self.message))


class DeviceNotUsed(ShotflowError):
    """Raised by a compiler's constructor to drop its device from the sequence.

    The device is then neither constructed, entered nor run. Not an error for
    the run: the engine logs it and carries on.
    """


class UnknownDeviceTypeError(ShotflowError, KeyError):
    """A configuration names a device ``type`` that no plugin registered.

    ``device_type`` is the requested type, ``known_types`` the registered ones.
    """

    def __init__(self, device_type: str, known_types: Iterable[str]) -> None:
        self.device_type = device_type
        self.known_types = sorted(known_types)
        known = ", ".join(self.known_types) or "none"
        super().__init__(
            f"unknown device type {device_type!r}; known types: {known}. "
            "Install the plugin that provides it (entry point group 'shotflow.devices')."
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.device_type, self.known_types))


class DeviceRegistrationError(ShotflowError, ValueError):
    """A device type was registered with inconsistent classes."""


class ShotContextError(ShotflowError, RuntimeError):
    """A controller misused its ``ShotContext`` (a bug in the controller, not the instrument)."""


class DeviceConfigurationError(ShotflowError, ValueError):
    """A device's settings do not fit the sequence (e.g. a channel naming no timeline lane).

    Raised by a compiler's constructor, before any instrument is touched; ``device`` names it.
    """

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"device {device!r}: {message}")
        self.device = device
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.device, self.message))


class DataDeclarationError(ShotContextError):
    """A controller signalled data its device did not declare, or that does not fit the declaration.

    ``device`` names the device; the message names the label and the problem.
    """

    def __init__(self, device: str, message: str) -> None:
        super().__init__(f"device {device!r}: {message}")
        self.device = device
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.device, self.message))
