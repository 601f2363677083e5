"""Errors of the sequence layer, rooted in :class:`devices.ShotflowError`."""

from __future__ import annotations

from devices import ShotflowError

__all__ = [
    "CalibrationError",
    "DeviceBusyError",
    "ExpressionError",
    "LocalServerError",
    "SequenceFailedError",
    "SpecError",
]


class SpecError(ShotflowError, ValueError):
    """The sequence description is invalid; the message names the field path."""


class ExpressionError(SpecError):
    """An expression cannot be parsed or evaluated.

    ``expression`` is the offending text, ``field`` the field path where it
    appears (may be empty) and ``problem`` the reason, without the path.
    """

    def __init__(self, expression: str, problem: str, field: str = "") -> None:
        self.expression = expression
        self.problem = problem
        self.field = field
        shown = expression if len(expression) <= 80 else expression[:77] + "..."
        prefix = f"{field}: " if field else ""
        super().__init__(f"{prefix}expression {shown!r}: {problem}")

    def at(self, field: str) -> ExpressionError:
        """Return a copy of this error located at ``field``."""
        return ExpressionError(self.expression, self.problem, field)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.expression, self.problem, self.field))


class SequenceFailedError(ShotflowError):
    """A sequence run failed; ``result`` (a ``SequenceResult``) says where its data is and why.

    The message names the shot, the device and the cause; every completed shot
    is in the store.
    """

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.result))


class DeviceBusyError(ShotflowError):
    """A device this sequence needs is held by another run (``execution.device_lock``).

    ``devices`` names the busy devices; the message says which run holds each
    one when that is known.
    """

    def __init__(self, message: str, devices: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.devices = devices

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.devices))


class CalibrationError(ShotflowError):
    """A calibration's scan or fit failed its quality check; the last good value is kept.

    ``name`` is the calibration (as in ``calibrated.NAME``); the message says
    which check failed and by how much.
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"calibration {name!r} rejected: {message}")
        self.name = name
        self.reason = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.reason))


class LocalServerError(ShotflowError):
    """The local Prefect server that shotflow manages could not be started, reached or stopped.

    The message says why, with the end of the server's log when it failed to start.
    """
