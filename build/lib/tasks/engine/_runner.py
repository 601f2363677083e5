"""The execution stage: runs one shot's controllers together, with timeout and retries."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from devices import DataDeclaration, Device, DeviceController, DeviceError, DeviceTimeoutError, ShotExchange
from tasks.records import CompiledShot, ShotRecord, ShotStatus, raise_first

from ._errors import ShotExecutionError
from ._loop_watch import watch_steps
from ._retry import RetryPolicy

__all__ = ["ShotRunner"]

logger = logging.getLogger(__name__)


class ShotRunner:
    """Runs shots on entered devices: every controller's ``run_shot`` concurrently.

    A controller error cancels the other controllers of the shot at once; a shot
    that does not finish within ``timeout`` seconds is cancelled and fails with
    :class:`DeviceTimeoutError` naming the devices still running. Failed attempts
    are re-run as ``retry`` allows. ``declarations`` (device name -> its
    :meth:`DeviceCompiler.declare_data`) are checked on every signalled datum.
    """

    def __init__(
        self,
        devices: Mapping[str, Device],
        controllers: Mapping[str, DeviceController],
        *,
        timeout: float,
        retry: RetryPolicy,
        block_warning: float = 0.05,
        declarations: Mapping[str, Mapping[str, DataDeclaration]] | None = None,
    ) -> None:
        self._devices = dict(devices)
        self._controllers = dict(controllers)
        self._timeout = timeout
        self._retry = retry
        self._block_warning = block_warning
        self._declarations = dict(declarations or {})

    async def run(self, compiled: CompiledShot, *, on_trigger: Callable[[], None] | None = None) -> ShotRecord:
        """Run ``compiled`` until it succeeds or fails for good.

        ``on_trigger`` is called when an attempt's devices are all ready (the trigger).
        Returns the completed :class:`ShotRecord`. Raises :class:`ShotExecutionError`
        (with the failed record and the device error chained) after the last attempt.
        """
        start = time.time()
        attempt = 0
        while True:
            attempt += 1
            try:
                data = await self._attempt(compiled, on_trigger)
            except DeviceError as error:
                if self._retry.should_retry(error, attempt):
                    logger.warning("shot %d attempt %d failed, retrying: %s", compiled.index, attempt, error)
                    continue
                record = ShotRecord(
                    index=compiled.index,
                    parameters=compiled.shot.parameters,
                    data={},
                    start_time=start,
                    end_time=time.time(),
                    attempts=attempt,
                    status=ShotStatus.FAILED,
                    indices=compiled.shot.indices,
                )
                raise ShotExecutionError(
                    error.device,
                    f"shot {compiled.index} failed after {attempt} attempt(s): {error.message}",
                    shot_index=compiled.index,
                    record=record,
                ) from error
            return ShotRecord(
                index=compiled.index,
                parameters=compiled.shot.parameters,
                data=data,
                start_time=start,
                end_time=time.time(),
                attempts=attempt,
                indices=compiled.shot.indices,
            )

    async def _attempt(self, compiled: CompiledShot, on_trigger: Callable[[], None] | None) -> dict[str, Any]:
        names = list(compiled.instructions)
        exchange = ShotExchange(
            compiled.index, compiled.shot.parameters, names, on_trigger, declarations=self._declarations
        )
        running = set(names)

        async def run_one(name: str) -> None:
            context = exchange.context_for(name)
            coroutine = self._controllers[name].run_shot(self._devices[name], compiled.instructions[name], context)
            try:
                await watch_steps(coroutine, name, compiled.index, self._block_warning)
            except DeviceError:
                raise
            except Exception as exc:
                raise DeviceError(name, f"shot {compiled.index}: {type(exc).__name__}: {exc}") from exc
            exchange.mark_finished(name)
            running.discard(name)

        try:
            with anyio.fail_after(self._timeout):
                async with anyio.create_task_group() as tg:
                    for name in names:
                        tg.start_soon(run_one, name, name=f"shot {compiled.index} {name}")
        except TimeoutError as exc:
            stuck = sorted(running)
            raise DeviceTimeoutError(
                stuck[0] if stuck else "?",
                f"shot {compiled.index} did not finish within {self._timeout:g} s (still running: {', '.join(stuck)})",
            ) from exc
        except BaseExceptionGroup as group:
            raise_first(group)
        return dict(exchange.data)
