"""Detects controllers that block the event loop, and names them."""

from __future__ import annotations

import logging
import time
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["watch_steps"]

logger = logging.getLogger(__name__)


class _StepWatcher[T]:
    """Drives a coroutine and times each of its steps (the code between two awaits).

    A step longer than ``threshold`` seconds blocked the whole event loop, and
    with it every other device of the shot: it is reported with the device name.
    """

    def __init__(self, coro: Coroutine[Any, Any, T], device: str, shot: int, threshold: float) -> None:
        self._coro = coro
        self._device = device
        self._shot = shot
        self._threshold = threshold

    def __await__(self) -> Generator[Any, Any, T]:
        coro = self._coro
        send_value: Any = None
        throw: BaseException | None = None
        while True:
            t0 = time.perf_counter()
            try:
                if throw is not None:
                    yielded = coro.throw(throw)
                else:
                    yielded = coro.send(send_value)
            except StopIteration as stop:
                self._check(time.perf_counter() - t0)
                return stop.value
            self._check(time.perf_counter() - t0)
            try:
                send_value = yield yielded
                throw = None
            except BaseException as exc:  # noqa: BLE001 - delivered into the controller, which decides
                send_value, throw = None, exc

    def _check(self, elapsed: float) -> None:
        if elapsed > self._threshold:
            logger.warning(
                "device %s blocked the event loop for %.0f ms during shot %d; "
                "use shot.run_blocking() for blocking driver calls",
                self._device,
                elapsed * 1e3,
                self._shot,
            )


async def watch_steps[T](coro: Coroutine[Any, Any, T], device: str, shot: int, threshold: float) -> T:
    """Await ``coro``, warning (naming ``device``) whenever one step blocks longer than ``threshold`` s."""
    return await _StepWatcher(coro, device, shot, threshold)
