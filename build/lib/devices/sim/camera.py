"""``sim.camera``: an externally triggered camera imaging a simulated atom cloud.

The atom number follows a physical model of the shot's parameters::

    N = atoms * L(detuning) * sin^2(pi * rabi_frequency * pulse_time)
    L(d) = 1 / (1 + (2 * (d - resonance) / linewidth)^2)     (Lorentzian, FWHM linewidth)

each factor being 1 when its parameter (``detuning``, ``pulse_time``) is unset.
The first picture of a shot shows a Gaussian cloud holding N counts (one count
per atom) on the background; later pictures show the background only (the
first picture pushed the atoms away), as in absorption imaging. Shot noise is
Poisson, seeded by ``(seed, shot index, picture index)``: a shot's images are
reproducible.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Literal, override

import numpy as np
from pydantic import Field

from .._configuration import DeviceConfiguration, Expression, expression
from .._data import Coordinate, DataDeclaration
from .._errors import DeviceConfigurationError, DeviceNotUsed
from .._shot import CameraLane, SequenceContext, Shot
from .._shot_context import ShotContext, run_blocking
from ._base import SimCompiler, SimConfiguration, SimController, SimDevice, lane_names
from ._faults import SimFaults

__all__ = ["CameraCompiler", "CameraConfig", "CameraController", "CameraDevice", "simulate_image"]

ARM_TIME = 200e-6
"""Simulated time to arm the camera (blocking driver call), in seconds."""
MAX_COUNTS = np.iinfo(np.uint16).max


class CameraConfig(SimConfiguration):
    """Settings of a simulated camera and of the atom cloud it images."""

    type: Literal["sim.camera"] = "sim.camera"
    lane: str = "camera"
    """Camera lane of the timeline; the camera is not used if the timeline has no such lane."""
    roi: tuple[int, int] = (64, 64)
    """Image shape (rows, columns)."""
    pixel_size: expression("m") = "6.5 um"  # type: ignore[valid-type]
    """Size of a pixel in the object plane: the step of the images' ``x`` and ``y`` coordinates."""
    exposure: expression("s") = "1 ms"  # type: ignore[valid-type]
    atoms: float = Field(1e5, ge=0)
    """Atom number on resonance at a pi pulse."""
    detuning: Expression | None = None
    """Probe detuning, e.g. ``"detuning"``; None: always on resonance."""
    resonance: expression("Hz") = "0 Hz"  # type: ignore[valid-type]
    linewidth: expression("Hz") = "500 kHz"  # type: ignore[valid-type]
    """Full width at half maximum of the Lorentzian resonance."""
    pulse_time: Expression | None = None
    """Rabi pulse duration, e.g. ``"pulse_duration"``; None: no Rabi factor."""
    rabi_frequency: expression("Hz") = "50 kHz"  # type: ignore[valid-type]
    cloud_sigma: float = Field(8.0, gt=0)
    """Cloud radius (Gaussian sigma) in pixels."""
    background: float = Field(100.0, ge=0)
    """Background counts per pixel."""
    noise: bool = True
    """Poisson shot noise on every pixel."""
    seed: int = 0


def atom_number(
    atoms: float,
    detuning: float | None,
    resonance: float,
    linewidth: float,
    pulse_time: float | None,
    rabi_frequency: float,
) -> float:
    """The model's atom number (see the module docstring); SI inputs."""
    n = atoms
    if detuning is not None:
        n /= 1.0 + (2.0 * (detuning - resonance) / linewidth) ** 2
    if pulse_time is not None:
        n *= math.sin(math.pi * rabi_frequency * pulse_time) ** 2
    return n


def simulate_image(
    roi: tuple[int, int],
    atoms: float,
    sigma: float,
    background: float,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """A uint16 image: ``background`` + a centred Gaussian cloud summing to ``atoms`` counts.

    Poisson noise is drawn from ``rng`` unless it is None; counts saturate at 65535.
    """
    rows, cols = roi
    y = np.arange(rows) - (rows - 1) / 2
    x = np.arange(cols) - (cols - 1) / 2
    profile_y = np.exp(-(y**2) / (2 * sigma**2))
    profile_x = np.exp(-(x**2) / (2 * sigma**2))
    cloud = np.outer(profile_y, profile_x)
    cloud *= atoms / (2 * math.pi * sigma**2)
    expected = cloud + background
    counts = rng.poisson(expected) if rng is not None else np.rint(expected)
    return np.clip(counts, 0, MAX_COUNTS).astype(np.uint16)


class CameraCompiler(SimCompiler):
    """Finds the pictures in the camera lane and evaluates the atom model per shot."""

    config: CameraConfig

    def __init__(self, name: str, config: DeviceConfiguration, sequence: SequenceContext) -> None:
        super().__init__(name, config, sequence)
        known = lane_names(sequence)
        if known is not None and self.config.lane not in known:
            raise DeviceNotUsed(f"{name}: the timeline has no camera lane {self.config.lane!r}")
        rows, cols = self.config.roi
        if rows < 1 or cols < 1:
            raise DeviceConfigurationError(name, f"roi must be positive, got {self.config.roi}")

    @override
    def compile_initialization_parameters(self) -> Mapping[str, Any]:
        c = self.config
        return {
            **super().compile_initialization_parameters(),
            "roi": tuple(c.roi),
            "cloud_sigma": c.cloud_sigma,
            "background": c.background,
            "noise": c.noise,
            "seed": c.seed,
        }

    @override
    def declare_data(self) -> Mapping[str, DataDeclaration]:
        """One label per picture of the camera lane: counts (uint16) over ``(y, x)``, in metres."""
        c = self.config
        pictures = getattr(self.sequence, "camera_pictures", {}).get(c.lane, ())
        try:
            step = self.sequence.evaluate(c.pixel_size, None, "m")
        except ValueError as exc:
            raise DeviceConfigurationError(self.name, f"pixel_size: {exc}") from exc
        if not step > 0:
            raise DeviceConfigurationError(self.name, f"pixel_size must be positive, got {c.pixel_size!r}")
        coords = {
            "y": Coordinate(unit="m", step=step, long_name="position along the image rows"),
            "x": Coordinate(unit="m", step=step, long_name="position along the image columns"),
        }
        return {
            name: DataDeclaration(
                unit="count",
                dims=("y", "x"),
                dtype="uint16",
                shape=tuple(c.roi),
                coords=coords,
                long_name=f"{self.name} picture {name}",
            )
            for name in dict.fromkeys(pictures)
        }

    @override
    def compile_shot(self, shot: Shot) -> Mapping[str, Any]:
        c = self.config
        timeline = self.sequence.timeline(shot)
        lane = timeline.lanes.get(c.lane)
        if not isinstance(lane, CameraLane):
            found = "missing" if lane is None else f"a {type(lane).__name__}"
            raise ValueError(f"device {self.name!r}: timeline lane {c.lane!r} must be a camera lane, it is {found}")
        pictures = [
            (name, start) for name, start in zip(lane.values, timeline.step_starts, strict=False) if name is not None
        ]
        names = [name for name, _ in pictures]
        if len(set(names)) != len(names):
            raise ValueError(f"device {self.name!r}: picture names repeat in lane {c.lane!r}: {names}")
        number = atom_number(
            c.atoms,
            None if c.detuning is None else self.evaluate(c.detuning, shot, "Hz"),
            self.evaluate(c.resonance, shot, "Hz"),
            self.evaluate(c.linewidth, shot, "Hz"),
            None if c.pulse_time is None else self.evaluate(c.pulse_time, shot, "s"),
            self.evaluate(c.rabi_frequency, shot, "Hz"),
        )
        return {
            "pictures": tuple(pictures),
            "exposure": self.evaluate(c.exposure, shot, "s"),
            "atom_number": number,
        }


class CameraDevice(SimDevice):
    """The simulated camera: armed per shot, reads out one image per picture."""

    def __init__(
        self,
        *,
        name: str,
        faults: SimFaults,
        roi: tuple[int, int],
        cloud_sigma: float,
        background: float,
        noise: bool,
        seed: int,
    ) -> None:
        super().__init__(name=name, faults=faults)
        self.roi = roi
        self.cloud_sigma = cloud_sigma
        self.background = background
        self.noise = noise
        self.seed = seed
        self.armed_pictures = 0

    def arm(self, pictures: int, exposure: float) -> None:
        """Blocking: wait for external triggers for ``pictures`` exposures of ``exposure`` s."""
        self.check_connected()
        time.sleep(ARM_TIME)
        self.armed_pictures = pictures

    def read_image(self, shot_index: int, picture_index: int, atoms: float) -> np.ndarray:
        """Blocking: read out picture ``picture_index`` of shot ``shot_index``."""
        rng = np.random.default_rng([self.seed, shot_index, picture_index]) if self.noise else None
        return simulate_image(self.roi, atoms if picture_index == 0 else 0.0, self.cloud_sigma, self.background, rng)


class CameraController(SimController):
    """Arms, waits for the barrier, then signals each picture once its exposure has ended."""

    @override
    async def play(self, device: CameraDevice, instructions: Mapping[str, Any], shot: ShotContext) -> None:
        pictures = instructions["pictures"]
        exposure = float(instructions["exposure"])
        await run_blocking(device.arm, len(pictures), exposure)
        await shot.wait_all_devices_ready()
        for index, (name, start) in enumerate(pictures):
            await shot.wait_until(start + exposure)
            image = await run_blocking(device.read_image, shot.index, index, float(instructions["atom_number"]))
            shot.signal_data(name, image)
