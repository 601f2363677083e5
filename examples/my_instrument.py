"""Writing a new instrument: a shutter controller driven by a synchronous serial driver.

Everything an instrument needs fits in one file: a configuration (the settings a
user writes in the spec, expressions allowed), a compiler (settings + shot
parameters -> instructions), a device (the connection, opened in ``__enter__``)
and a controller (runs one shot). Register it in your package's entry points::

    [project.entry-points."shotflow.devices"]
    my_lab = "my_lab.instruments:register"
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal, Self

from devices import (
    DataDeclaration,
    Device,
    DeviceCompiler,
    DeviceConfiguration,
    DeviceController,
    DeviceError,
    Shot,
    ShotContext,
    expression,
    register_device,
)


class ShutterConfig(DeviceConfiguration):
    """Settings: which port, and how long the shutter stays open (an expression of the shot's parameters)."""

    type: Literal["example.shutter"] = "example.shutter"
    port: str = "/dev/ttyUSB0"
    open_time: expression("s") = "2 ms"  # type: ignore[valid-type]


class ShutterCompiler(DeviceCompiler):
    """Evaluates ``open_time`` for each shot; runs in the engine, never touches the hardware."""

    config: ShutterConfig

    def compile_initialization_parameters(self) -> Mapping[str, Any]:
        return {"port": self.config.port}

    def declare_data(self) -> Mapping[str, DataDeclaration]:
        return {"open_time": DataDeclaration(unit="s", long_name="measured shutter open time")}

    def compile_shot_parameters(self, shot: Shot) -> Mapping[str, Any]:
        return {"open_time": self.sequence.evaluate(self.config.open_time, shot, "s")}


class ShutterDevice(Device):
    """The connection; the constructor does no I/O."""

    def __init__(self, *, port: str) -> None:
        self.port = port
        self.connected = False

    def __enter__(self) -> Self:
        self.connected = True  # e.g. serial.Serial(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self.connected = False

    def pulse(self, seconds: float) -> float:
        """A blocking driver call: open, wait, close; returns the measured open time."""
        if not self.connected:
            raise DeviceError(self.port, "not connected")
        start = time.monotonic()
        time.sleep(seconds)
        return time.monotonic() - start


class ShutterController(DeviceController):
    """Waits for every device to be ready, pulses the shutter, publishes the open time."""

    async def run_shot(self, device: ShutterDevice, instructions: Mapping[str, Any], shot: ShotContext) -> None:
        await shot.wait_all_devices_ready()  # the shot is triggered once every device is ready
        measured = await shot.run_blocking(device.pulse, instructions["open_time"])  # never block the loop
        shot.signal_data("open_time", measured)  # stored as "<device name>.open_time"


def register() -> None:
    """Entry point of the ``shotflow.devices`` group."""
    register_device(
        "example.shutter",
        configuration=ShutterConfig,
        compiler=ShutterCompiler,
        device=ShutterDevice,
        controller=ShutterController,
    )
