"""``sim.rf_source``: an RF synthesizer whose frequency and amplitude are set per shot.

Its synchronous driver takes ``settle_time`` to apply a new setting (a setting
equal to the current one is skipped, as real drivers do); the controller holds
the output for the shot duration and reads the frequency back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal, override

from .._configuration import Expression, expression
from .._data import DataDeclaration
from .._shot import Shot
from .._shot_context import ShotContext, run_blocking
from ._base import SimCompiler, SimConfiguration, SimController, SimDevice
from ._faults import SimFaults

__all__ = ["RFSourceCompiler", "RFSourceConfig", "RFSourceController", "RFSourceDevice"]


class RFSourceConfig(SimConfiguration):
    """Settings of a simulated RF source; expressions of the shot's parameters."""

    type: Literal["sim.rf_source"] = "sim.rf_source"
    frequency: expression("Hz")  # type: ignore[valid-type]
    amplitude: Expression = "1"
    """Output amplitude, relative to full scale."""
    settle_time: expression("s") = "1 ms"  # type: ignore[valid-type]
    """Time the synthesizer takes to settle after a change."""


class RFSourceCompiler(SimCompiler):
    """Evaluates frequency, amplitude and settle time for each shot."""

    config: RFSourceConfig

    @override
    def declare_data(self) -> Mapping[str, DataDeclaration]:
        return {"frequency": DataDeclaration(unit="Hz", long_name="RF frequency read back")}

    @override
    def compile_shot(self, shot: Shot) -> Mapping[str, Any]:
        c = self.config
        timeline = self.sequence.timeline(shot)
        return {
            "frequency": self.evaluate(c.frequency, shot, "Hz"),
            "amplitude": self.evaluate(c.amplitude, shot),
            "settle_time": self.evaluate(c.settle_time, shot, "s"),
            "duration": timeline.duration,
        }


class RFSourceDevice(SimDevice):
    """The simulated synthesizer with a blocking driver."""

    def __init__(self, *, name: str, faults: SimFaults) -> None:
        super().__init__(name=name, faults=faults)
        self.frequency: float | None = None
        self.amplitude: float | None = None

    def apply(self, frequency: float, amplitude: float, settle_time: float) -> None:
        """Blocking: set the output, then wait ``settle_time`` if it changed."""
        self.check_connected()
        if (frequency, amplitude) == (self.frequency, self.amplitude):
            return
        self.frequency, self.amplitude = frequency, amplitude
        time.sleep(settle_time)

    def read_frequency(self) -> float:
        """The frequency currently output (Hz)."""
        self.check_connected()
        assert self.frequency is not None, "read before apply"
        return self.frequency


class RFSourceController(SimController):
    """Applies the setting, waits for the barrier, holds it for the shot; signals ``frequency``."""

    @override
    async def play(self, device: RFSourceDevice, instructions: Mapping[str, Any], shot: ShotContext) -> None:
        await run_blocking(
            device.apply,
            float(instructions["frequency"]),
            float(instructions["amplitude"]),
            float(instructions["settle_time"]),
        )
        await shot.wait_all_devices_ready()
        await shot.wait_until(float(instructions["duration"]))
        shot.signal_data("frequency", device.read_frequency())
