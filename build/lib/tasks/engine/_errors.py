"""The errors of the shot engine, rooted in :class:`devices.DeviceError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devices import DeviceError

__all__ = ["DeviceExitError", "DeviceSetupError", "ShotExecutionError"]


class _DevicesError(DeviceError):
    """Errors of several devices at once: ``device`` names the first, ``errors`` maps every device to its error."""

    def __init__(self, device: str, message: str, *, errors: Mapping[str, BaseException] | None = None) -> None:
        super().__init__(device, message)
        self.errors: dict[str, BaseException] = dict(errors or {})


class DeviceSetupError(_DevicesError):
    """One or more devices failed to enter; ``device`` names the first, the message all of them."""


class DeviceExitError(_DevicesError):
    """One or more devices failed to exit; every other device was still exited."""


class ShotExecutionError(DeviceError):
    """A shot failed on a device after its last attempt.

    ``shot_index`` is the shot, ``device`` the device whose error ended it, and
    ``record`` the failed shot's record (stored with status failed).
    """

    def __init__(self, device: str, message: str, *, shot_index: int | None = None, record: Any = None) -> None:
        super().__init__(device, message)
        self.shot_index = shot_index
        self.record = record

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_execution_error, (self.device, self.message, self.shot_index, self.record))


def _rebuild_execution_error(device: str, message: str, shot_index: int | None, record: Any) -> ShotExecutionError:
    return ShotExecutionError(device, message, shot_index=shot_index, record=record)
