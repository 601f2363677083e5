"""Simulated instruments: a lab without hardware, for demos, tests and benchmarks.

Each instrument is a real implementation of the device model with realistic
timing, and accepts :class:`SimFaults` to inject failures on purpose.
:func:`register_all` registers them (entry point ``shotflow.devices: sim``).
"""

from .._registry import register_device
from ._faults import SimFaults
from .camera import CameraCompiler, CameraConfig, CameraController, CameraDevice
from .rf_source import RFSourceCompiler, RFSourceConfig, RFSourceController, RFSourceDevice
from .scope import ScopeCompiler, ScopeConfig, ScopeController, ScopeDevice
from .sequencer import SequencerCompiler, SequencerConfig, SequencerController, SequencerDevice

__all__ = [
    "CameraConfig",
    "RFSourceConfig",
    "ScopeConfig",
    "SequencerConfig",
    "SimFaults",
    "register_all",
]


def register_all() -> None:
    """Register ``sim.sequencer``, ``sim.camera``, ``sim.rf_source`` and ``sim.scope`` (idempotent)."""
    register_device(
        "sim.sequencer",
        configuration=SequencerConfig,
        compiler=SequencerCompiler,
        device=SequencerDevice,
        controller=SequencerController,
    )
    register_device(
        "sim.camera",
        configuration=CameraConfig,
        compiler=CameraCompiler,
        device=CameraDevice,
        controller=CameraController,
    )
    register_device(
        "sim.rf_source",
        configuration=RFSourceConfig,
        compiler=RFSourceCompiler,
        device=RFSourceDevice,
        controller=RFSourceController,
    )
    register_device(
        "sim.scope", configuration=ScopeConfig, compiler=ScopeCompiler, device=ScopeDevice, controller=ScopeController
    )
