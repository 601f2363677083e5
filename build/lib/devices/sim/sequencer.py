"""``sim.sequencer``: a software-triggered digital/analog pulse sequencer.

The compiler samples the shot timeline at ``time_step``: digital channels as
``uint8`` 0/1 arrays, analog channels as ``float32`` arrays with ramps linearly
interpolated. The device "uploads" the arrays (time proportional to their
size), is triggered after the barrier and plays for the shot duration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, override

import numpy as np
from pydantic import Field

from .._configuration import DeviceConfiguration, expression
from .._data import DataDeclaration
from .._errors import DeviceConfigurationError, DeviceError, DeviceNotUsed
from .._shot import AnalogLane, DigitalLane, Ramp, SequenceContext, Shot, ShotTimeline
from .._shot_context import ShotContext, run_blocking
from ._base import SimCompiler, SimConfiguration, SimController, SimDevice, lane_names

__all__ = ["SequencerCompiler", "SequencerConfig", "SequencerController", "SequencerDevice"]

logger = logging.getLogger(__name__)

UPLOAD_BYTES_PER_SECOND = 1e9
"""Simulated upload bandwidth of the instrument."""
UPLOAD_LATENCY = 100e-6
"""Simulated fixed cost of one upload, in seconds."""


class SequencerConfig(SimConfiguration):
    """Settings of a simulated pulse sequencer."""

    type: Literal["sim.sequencer"] = "sim.sequencer"
    time_step: expression("s") = "1 us"  # type: ignore[valid-type]
    """Sample period."""
    channels: list[str] = Field(min_length=1)
    """Timeline lanes played by this sequencer (digital or analog); list order = channel index."""


class SequencerCompiler(SimCompiler):
    """Samples the timeline lanes of ``channels`` at ``time_step`` (vectorised numpy)."""

    compile_in_process: ClassVar[bool] = True
    config: SequencerConfig

    def __init__(self, name: str, config: DeviceConfiguration, sequence: SequenceContext) -> None:
        super().__init__(name, config, sequence)
        known = lane_names(sequence)
        if known is not None:
            used = [c for c in self.config.channels if c in known]
            if not used:
                logger.warning("%s: none of its channels %s is a timeline lane; not used", name, self.config.channels)
                raise DeviceNotUsed(f"{name}: none of the channels {self.config.channels} is in the timeline")
            unknown = [c for c in self.config.channels if c not in known]
            if unknown:
                raise DeviceConfigurationError(
                    name, f"channels {unknown} are not timeline lanes; known lanes: {sorted(known)}"
                )

    @override
    def declare_data(self) -> Mapping[str, DataDeclaration]:
        return {"duration": DataDeclaration(unit="s", long_name="duration played")}

    @override
    def compile_shot(self, shot: Shot) -> Mapping[str, Any]:
        time_step = self.evaluate(self.config.time_step, shot, "s")
        if not time_step > 0:
            raise ValueError(f"device {self.name!r}: time_step must be positive, got {time_step} s")
        timeline = self.sequence.timeline(shot)
        counts = _samples_per_step(timeline, time_step)
        digital_names, analog_names, digital, analog = [], [], [], []
        for channel in self.config.channels:
            lane = timeline.lanes.get(channel)
            if isinstance(lane, DigitalLane):
                digital_names.append(channel)
                digital.append(np.repeat(np.asarray(lane.values, dtype=np.uint8), counts))
            elif isinstance(lane, AnalogLane):
                analog_names.append(channel)
                analog.append(_sample_analog(lane, counts))
            elif lane is None:
                raise ValueError(f"device {self.name!r}: channel {channel!r} is not a timeline lane")
            else:
                raise ValueError(
                    f"device {self.name!r}: lane {channel!r} is a {type(lane).__name__}, not digital/analog"
                )
        n = int(counts.sum())
        return {
            "time_step": time_step,
            "n_samples": n,
            "duration": timeline.duration,
            "digital_channels": tuple(digital_names),
            "digital": np.stack(digital) if digital else np.zeros((0, n), np.uint8),
            "analog_channels": tuple(analog_names),
            "analog": np.stack(analog) if analog else np.zeros((0, n), np.float32),
        }


def _samples_per_step(timeline: ShotTimeline, time_step: float) -> np.ndarray:
    """Samples in each step; step boundaries are rounded to the sample grid so no time drifts."""
    ends = np.rint(np.cumsum(np.asarray(timeline.durations, dtype=np.float64)) / time_step).astype(np.int64)
    return np.diff(ends, prepend=0)


def _sample_analog(lane: AnalogLane, counts: np.ndarray) -> np.ndarray:
    starts = np.array([v.start if isinstance(v, Ramp) else v for v in lane.values], dtype=np.float64)
    stops = np.array([v.stop if isinstance(v, Ramp) else v for v in lane.values], dtype=np.float64)
    step = np.repeat(np.arange(len(counts)), counts)
    first_sample = np.cumsum(counts) - counts
    fraction = (np.arange(step.size) - first_sample[step]) / np.maximum(counts[step], 1)
    return (starts[step] + (stops - starts)[step] * fraction).astype(np.float32)


class SequencerDevice(SimDevice):
    """The simulated sequencer hardware: holds the uploaded program."""

    def __init__(self, *, name: str, faults: Any) -> None:
        super().__init__(name=name, faults=faults)
        self.program: Mapping[str, Any] | None = None
        self.triggers = 0

    def upload(self, instructions: Mapping[str, Any]) -> None:
        """Blocking: transfer the sample arrays to the instrument."""
        self.check_connected()
        size = instructions["digital"].nbytes + instructions["analog"].nbytes
        time.sleep(UPLOAD_LATENCY + size / UPLOAD_BYTES_PER_SECOND)
        self.program = instructions

    def software_trigger(self) -> None:
        """Start playing the uploaded program."""
        if self.program is None:
            raise DeviceError(self.name, "triggered without an uploaded program")
        self.triggers += 1


class SequencerController(SimController):
    """Uploads, waits for the barrier, triggers, plays for the shot duration; signals ``duration``."""

    @override
    async def play(self, device: SequencerDevice, instructions: Mapping[str, Any], shot: ShotContext) -> None:
        await run_blocking(device.upload, instructions)
        await shot.wait_all_devices_ready()
        device.software_trigger()
        duration = float(instructions["duration"])
        await shot.wait_until(duration)
        shot.signal_data("duration", duration)
