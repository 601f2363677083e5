"""Entering and exiting a sequence's devices: the flow-level resources of a run."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio

from devices import Device, DeviceError

from ._errors import DeviceExitError, DeviceSetupError

__all__ = ["open_devices"]

logger = logging.getLogger(__name__)

EXIT_TIMEOUT = 30.0
"""Seconds allowed for one device's ``__exit__`` before it is reported as stuck."""


def _collect(
    cls: type[DeviceSetupError | DeviceExitError], verb: str, errors: Mapping[str, BaseException]
) -> DeviceError:
    details = "; ".join(f"{name}: {type(e).__name__}: {e}" for name, e in errors.items())
    return cls(next(iter(errors)), f"could not {verb} device(s) {', '.join(errors)} ({details})", errors=errors)


def _exit_one(name: str, device: Device, exc: BaseException | None) -> None:
    if exc is None:
        device.__exit__(None, None, None)
    else:
        device.__exit__(type(exc), exc, exc.__traceback__)


@asynccontextmanager
async def open_devices(devices: Mapping[str, Device]) -> AsyncIterator[Mapping[str, Device]]:
    """Enter every device concurrently (each ``__enter__`` in a worker thread).

    Yields the entered devices. On exit, or if any device fails to enter, every
    device that was entered is exited exactly once, in reverse order of entry,
    each in a worker thread with the cancellation shielded, so that one failing
    ``__exit__`` never skips the others. Raises :class:`DeviceSetupError` naming
    every device that failed to enter, and :class:`DeviceExitError` for exit
    failures when the body itself succeeded (otherwise they are logged and the
    body's exception propagates).
    """
    entered: list[str] = []
    enter_errors: dict[str, BaseException] = {}

    async def enter(name: str, device: Device) -> None:
        try:
            await anyio.to_thread.run_sync(device.__enter__)
        except Exception as exc:  # noqa: BLE001 - collected and reported together
            logger.error("device %s failed to enter: %s", name, exc)
            enter_errors[name] = exc
        else:
            entered.append(name)
            logger.info("device %s entered", name)

    body_exc: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            for name, device in devices.items():
                tg.start_soon(enter, name, device, name=f"enter {name}")
        if enter_errors:
            raise _collect(DeviceSetupError, "enter", enter_errors)
        yield {name: devices[name] for name in entered}
    except BaseException as exc:
        body_exc = exc
        raise
    finally:
        exit_errors = await _exit_all(devices, entered, body_exc)
        if exit_errors and body_exc is None:
            raise _collect(DeviceExitError, "exit", exit_errors)


async def _exit_all(
    devices: Mapping[str, Device], entered: list[str], body_exc: BaseException | None
) -> dict[str, BaseException]:
    errors: dict[str, BaseException] = {}
    with anyio.CancelScope(shield=True):
        for name in reversed(entered):
            try:
                with anyio.fail_after(EXIT_TIMEOUT):
                    await anyio.to_thread.run_sync(_exit_one, name, devices[name], body_exc, abandon_on_cancel=True)
            except Exception as exc:  # noqa: BLE001 - reported, never swallowed
                logger.error("device %s failed to exit: %s", name, exc)
                errors[name] = exc
            else:
                logger.info("device %s exited", name)
    return errors
