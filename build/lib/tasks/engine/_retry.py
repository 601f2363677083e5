"""The shot retry policy: a pure decision, tested on its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from devices import DeviceError, DeviceTimeoutError

__all__ = ["RetryPolicy"]

RetryKind = Literal["timeout", "device"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often a shot is re-run after a device error, and for which errors.

    ``retry_on``: ``"timeout"`` retries :class:`DeviceTimeoutError` and any error
    whose class declares ``retryable = True``; ``"device"`` retries every
    :class:`DeviceError`. ``max_attempts`` counts the first attempt.
    """

    max_attempts: int = 3
    retry_on: frozenset[RetryKind] = frozenset({"timeout"})

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """Whether to run the shot again after ``error`` ended attempt number ``attempt`` (1-based)."""
        if attempt >= self.max_attempts or not isinstance(error, DeviceError):
            return False
        if "device" in self.retry_on:
            return True
        return "timeout" in self.retry_on and (isinstance(error, DeviceTimeoutError) or error.retryable)
