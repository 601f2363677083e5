"""``sim.scope``: an oscilloscope triggered by the sequencer, acquiring one trace per shot.

With ``source_lane`` set it measures that analog lane of the timeline (ramps
included) plus Gaussian noise of standard deviation ``noise``, seeded by
``(seed, shot index)``; otherwise it records noise around zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, override

import numpy as np
from pydantic import Field

from .._configuration import DeviceConfiguration, expression
from .._data import Coordinate, DataDeclaration
from .._errors import DeviceConfigurationError, DeviceError
from .._shot import AnalogLane, Ramp, SequenceContext, Shot, ShotTimeline
from .._shot_context import ShotContext, run_blocking
from ._base import SimCompiler, SimConfiguration, SimController, SimDevice, lane_names
from ._faults import SimFaults

__all__ = ["ScopeCompiler", "ScopeConfig", "ScopeController", "ScopeDevice"]


class ScopeConfig(SimConfiguration):
    """Settings of a simulated oscilloscope."""

    type: Literal["sim.scope"] = "sim.scope"
    samples: int = Field(10_000, ge=1)
    """Points per trace."""
    sample_rate: expression("Hz") | None = None  # type: ignore[valid-type]
    """Samples per second from the trigger, giving the traces a ``time`` coordinate; None: the
    samples spread evenly over each shot's duration (no coordinate: it may change per shot)."""
    source_lane: str | None = None
    """Analog timeline lane the probe is connected to; None: nothing connected."""
    noise: float = Field(0.01, ge=0)
    """Standard deviation of the added Gaussian noise (lane units)."""
    seed: int = 0


def lane_waveform(timeline: ShotTimeline, lane: AnalogLane, times: np.ndarray) -> np.ndarray:
    """Values of ``lane`` at ``times`` (s after the trigger): constants held, ramps interpolated."""
    ends = np.cumsum(np.asarray(timeline.durations, dtype=np.float64))
    starts = ends - np.asarray(timeline.durations, dtype=np.float64)
    step = np.clip(np.searchsorted(ends, times, side="right"), 0, len(ends) - 1)
    first = np.array([v.start if isinstance(v, Ramp) else v for v in lane.values], dtype=np.float64)
    last = np.array([v.stop if isinstance(v, Ramp) else v for v in lane.values], dtype=np.float64)
    length = ends[step] - starts[step]
    fraction = np.where(length > 0, (times - starts[step]) / np.where(length > 0, length, 1), 0.0)
    return first[step] + (last - first)[step] * np.clip(fraction, 0, 1)


class ScopeCompiler(SimCompiler):
    """Computes the expected waveform of the probed lane for each shot."""

    config: ScopeConfig

    def __init__(self, name: str, config: DeviceConfiguration, sequence: SequenceContext) -> None:
        super().__init__(name, config, sequence)
        known = lane_names(sequence)
        lane = self.config.source_lane
        if known is not None and lane is not None and lane not in known:
            raise DeviceConfigurationError(name, f"source_lane {lane!r} is not a timeline lane; known: {sorted(known)}")

    @override
    def compile_initialization_parameters(self) -> Mapping[str, Any]:
        return {**super().compile_initialization_parameters(), "noise": self.config.noise, "seed": self.config.seed}

    @override
    def declare_data(self) -> Mapping[str, DataDeclaration]:
        c = self.config
        coords = {}
        if c.sample_rate is not None:
            coords["time"] = Coordinate(unit="s", step=self._sample_step(), long_name="time after the trigger")
        return {
            "trace": DataDeclaration(
                unit="V",
                dims=("time",),
                shape=(c.samples,),
                dtype="float32",
                coords=coords,
                long_name=f"{self.name} trace (the probed lane's value, read as volts)",
            )
        }

    def _sample_step(self) -> float:
        """Seconds between samples at ``sample_rate``; DeviceConfigurationError if it is not positive."""
        rate = self.sequence.evaluate(str(self.config.sample_rate), None, "Hz")
        if not rate > 0:
            raise DeviceConfigurationError(self.name, f"sample_rate must be positive, got {self.config.sample_rate!r}")
        return 1.0 / rate

    @override
    def compile_shot(self, shot: Shot) -> Mapping[str, Any]:
        c = self.config
        timeline = self.sequence.timeline(shot)
        duration = timeline.duration
        expected = np.zeros(c.samples, dtype=np.float32)
        if c.source_lane is not None and timeline.durations:
            lane = timeline.lanes.get(c.source_lane)
            if not isinstance(lane, AnalogLane):
                found = "missing" if lane is None else f"a {type(lane).__name__}"
                raise ValueError(f"device {self.name!r}: source_lane {c.source_lane!r} must be analog, it is {found}")
            step = duration / c.samples if c.sample_rate is None else self._sample_step()
            times = np.arange(c.samples) * step
            expected = lane_waveform(timeline, lane, times).astype(np.float32)
        return {"duration": duration, "expected": expected}


class ScopeDevice(SimDevice):
    """The simulated oscilloscope."""

    def __init__(self, *, name: str, faults: SimFaults, noise: float, seed: int) -> None:
        super().__init__(name=name, faults=faults)
        self.noise = noise
        self.seed = seed
        self.armed = False

    def arm(self) -> None:
        """Wait for the trigger (instant)."""
        self.check_connected()
        self.armed = True

    def fetch(self, shot_index: int, expected: np.ndarray) -> np.ndarray:
        """Blocking: transfer the acquired trace (float32)."""
        if not self.armed:
            raise DeviceError(self.name, "fetch before arm")
        self.armed = False
        rng = np.random.default_rng([self.seed, shot_index])
        noise = rng.standard_normal(expected.shape, dtype=np.float32) * np.float32(self.noise)
        return expected + noise


class ScopeController(SimController):
    """Arms, waits for the barrier, acquires for the shot duration, signals ``trace``."""

    @override
    async def play(self, device: ScopeDevice, instructions: Mapping[str, Any], shot: ShotContext) -> None:
        device.arm()
        await shot.wait_all_devices_ready()
        await shot.wait_until(float(instructions["duration"]))
        trace = await run_blocking(device.fetch, shot.index, instructions["expected"])
        shot.signal_data("trace", trace)
