"""Behaviour shared by every simulated instrument: naming, journaling and fault injection."""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Collection, Mapping
from types import TracebackType
from typing import Any, Self

import anyio

from .._configuration import DeviceConfiguration
from .._device import Device, DeviceCompiler, DeviceController
from .._errors import DeviceConfigurationError, DeviceError, DeviceTimeoutError, ShotCompilationError
from .._shot import SequenceContext, Shot
from .._shot_context import ShotContext
from ._faults import SimFaults, check_journal, write_journal

__all__ = ["SimCompiler", "SimConfiguration", "SimController", "SimDevice", "lane_names"]

logger = logging.getLogger(__name__)


class SimConfiguration(DeviceConfiguration):
    """Settings common to every simulated instrument."""

    faults: SimFaults = SimFaults()


def lane_names(sequence: SequenceContext) -> Collection[str] | None:
    """The timeline's lane names if the sequence context exposes them (``lane_names``), else None."""
    names = getattr(sequence, "lane_names", None)
    return None if names is None else frozenset(names)


def _check_journal(name: str, faults: SimFaults) -> None:
    try:
        check_journal(faults.journal)
    except ValueError as exc:
        raise DeviceConfigurationError(name, str(exc)) from None


class SimDevice(Device):
    """A simulated connection: journals enter/exit, injects enter/exit faults, counts faulty attempts."""

    def __init__(self, *, name: str, faults: SimFaults) -> None:
        """Raises DeviceConfigurationError if ``faults.journal`` lies outside the results folder."""
        _check_journal(name, faults)
        self.name = name
        self.faults = faults
        self.attempts = 0
        """Attempts so far of the shot ``faults.fail_run_shot`` (only that shot is counted)."""
        self.connected = False

    def __enter__(self) -> Self:
        if self.faults.enter_delay:
            time.sleep(self.faults.enter_delay)
        if self.faults.fail_on_enter:
            raise DeviceError(self.name, "injected fault: could not connect (fail_on_enter)")
        self.connected = True
        write_journal(self.faults.journal, self.name, "enter")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.connected = False
        write_journal(self.faults.journal, self.name, "exit")
        if self.faults.fail_on_exit:
            raise DeviceError(self.name, "injected fault: error while disconnecting (fail_on_exit)")

    def check_connected(self) -> None:
        """Raise :class:`DeviceError` unless the device was entered."""
        if not self.connected:
            raise DeviceError(self.name, "used before __enter__ (not connected)")


class SimCompiler(DeviceCompiler, abc.ABC):
    """Journals compilations and injects ``fail_compile_shot``; subclasses implement :meth:`compile_shot`."""

    config: SimConfiguration

    def __init__(self, name: str, config: DeviceConfiguration, sequence: SequenceContext) -> None:
        """Raises DeviceConfigurationError if ``faults.journal`` lies outside the results folder
        (checked when a run builds its compilers, before any instrument is entered)."""
        super().__init__(name, config, sequence)
        _check_journal(name, self.config.faults)

    def compile_initialization_parameters(self) -> Mapping[str, Any]:
        return {"name": self.name, "faults": self.config.faults}

    def compile_shot_parameters(self, shot: Shot) -> Mapping[str, Any]:
        faults = self.config.faults
        write_journal(faults.journal, self.name, "compile", shot.index)
        if faults.fail_compile_shot == shot.index:
            raise ShotCompilationError(shot.index, self.name, "injected fault (fail_compile_shot)")
        return self.compile_shot(shot)

    @abc.abstractmethod
    def compile_shot(self, shot: Shot) -> Mapping[str, Any]:
        """The instrument's instructions for ``shot``."""

    def evaluate(self, expression: str, shot: Shot, unit: str | None = None) -> float:
        """Evaluate a config expression for ``shot`` as a float (SI, or in ``unit``)."""
        return float(self.sequence.evaluate(expression, shot, unit))


class SimController(DeviceController):
    """Journals ``run_shot`` and injects run faults before :meth:`play`; subclasses implement :meth:`play`."""

    async def run_shot(self, device: SimDevice, instructions: Mapping[str, Any], shot: ShotContext) -> None:
        journal = device.faults.journal
        write_journal(journal, device.name, "run_start", shot.index)
        try:
            device.check_connected()
            await _inject_run_faults(device, shot)
            await self.play(device, instructions, shot)
        except anyio.get_cancelled_exc_class():
            write_journal(journal, device.name, "run_cancelled", shot.index)
            raise
        except BaseException:
            write_journal(journal, device.name, "run_failed", shot.index)
            raise
        write_journal(journal, device.name, "run_end", shot.index)

    @abc.abstractmethod
    async def play(self, device: Any, instructions: Mapping[str, Any], shot: ShotContext) -> None:
        """Program the device, meet at the barrier, run the shot and signal data."""


HOLD_POLL = 0.02
"""Seconds between two looks for the release file of ``hold_shot``."""


async def _hold(device: SimDevice, shot: ShotContext) -> None:
    release = device.faults.hold_until
    if release is None:
        raise DeviceError(device.name, "faults.hold_shot needs faults.hold_until (the release file)")
    write_journal(device.faults.journal, device.name, "held", shot.index)
    logger.info("%s: holding shot %d until %s exists (hold_shot)", device.name, shot.index, release)
    while not await anyio.Path(release).exists():  # noqa: ASYNC110 - another process creates the file
        await anyio.sleep(HOLD_POLL)


async def _inject_run_faults(device: SimDevice, shot: ShotContext) -> None:
    faults = device.faults
    if faults.hold_shot == shot.index:
        await _hold(device, shot)
    if faults.block_loop_shot == shot.index:
        logger.warning("%s: blocking the event loop for %g s (block_loop_shot)", device.name, faults.block_loop_seconds)
        time.sleep(faults.block_loop_seconds)  # noqa: ASYNC251 deliberate: exercises the engine's blocked-loop detector
    if faults.fail_run_shot != shot.index:
        return
    device.attempts += 1
    if device.attempts > faults.fail_run_attempts:
        return
    what = f"injected fault in shot {shot.index}, attempt {device.attempts} (fail_run_shot)"
    if faults.run_fault == "raise":
        raise DeviceError(device.name, what)
    if faults.run_fault == "timeout":
        raise DeviceTimeoutError(device.name, f"{what}: instrument did not answer")
    logger.info("%s: hanging until cancelled (%s)", device.name, what)
    await anyio.sleep_forever()
