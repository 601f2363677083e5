"""Fixtures for the devices tests: a picklable SequenceContext stand-in and shot helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from devices import (
    AnalogLane,
    CameraLane,
    Device,
    DeviceCompiler,
    DeviceConfiguration,
    DeviceController,
    DigitalLane,
    Ramp,
    Shot,
    ShotExchange,
    ShotTimeline,
    get_device_type,
)

UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}


@dataclass(frozen=True)
class FakeSequence:
    """A fixed timeline; evaluates variable names and ``"<number> [unit]"`` strings only."""

    fixed_timeline: ShotTimeline
    fixed_globals: Mapping[str, float] = field(default_factory=dict)
    sequence_name: str = "test"

    @property
    def name(self) -> str:
        return self.sequence_name

    @property
    def globals(self) -> Mapping[str, float]:
        return self.fixed_globals

    @property
    def lane_names(self) -> frozenset[str]:
        return frozenset(self.fixed_timeline.lanes)

    def evaluate(self, expression: str, shot: Shot | None = None, unit: str | None = None) -> Any:
        values = {**self.fixed_globals, **(shot.parameters if shot else {})}
        text = expression.strip()
        if text in values:
            value = float(values[text])
        else:
            number, _, suffix = text.partition(" ")
            try:
                value = float(number) * (UNITS[suffix] if suffix else 1.0)
            except (ValueError, KeyError):
                raise ValueError(f"cannot evaluate {expression!r}") from None
        return value / UNITS[unit] if unit else value

    def timeline(self, shot: Shot) -> ShotTimeline:
        return self.fixed_timeline


TIMELINE = ShotTimeline(
    step_names=("load", "ramp", "image", "background"),
    durations=(10e-3, 5e-3, 1e-3, 2e-3),
    lanes={
        "mot": DigitalLane((True, False, False, False)),
        "shutter": DigitalLane((False, True, True, False)),
        "coil": AnalogLane((1.0, Ramp(1.0, 0.0), 0.0, 0.0), unit="V"),
        "camera": CameraLane((None, None, "atoms", "background")),
    },
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_sequence() -> type[FakeSequence]:
    """The :class:`FakeSequence` class: ``make_sequence(timeline)``."""
    return FakeSequence


@pytest.fixture
def sequence() -> FakeSequence:
    return FakeSequence(TIMELINE)


@dataclass
class Instrument:
    """A compiled instrument ready to run: compiler, (not yet entered) device, controller."""

    name: str
    compiler: DeviceCompiler
    device: Device
    controller: DeviceController


def make_instrument(name: str, config: DeviceConfiguration, sequence: FakeSequence) -> Instrument:
    device_type = get_device_type(config.type)
    compiler = device_type.compiler(name, config, sequence)
    device = device_type.device(**compiler.compile_initialization_parameters())
    return Instrument(name, compiler, device, device_type.controller())


@pytest.fixture
def instrument() -> Callable[..., Instrument]:
    """``instrument(name, config, sequence)`` -> :class:`Instrument` through the registry."""
    return make_instrument


async def run_one_shot(instruments: list[Instrument], shot: Shot) -> dict[str, Any]:
    """Compile ``shot`` for every instrument and run their controllers in one task group."""
    exchange = ShotExchange(shot.index, shot.parameters, [i.name for i in instruments])
    async with anyio.create_task_group() as tg:
        for i in instruments:
            instructions = i.compiler.compile_shot_parameters(shot)
            tg.start_soon(exchange.run, i.name, i.controller, i.device, instructions)
    return exchange.data


@pytest.fixture
def run_shot() -> Callable[[list[Instrument], Shot], Awaitable[dict[str, Any]]]:
    """``await run_shot(instruments, shot)`` -> the shot's data (devices must be entered)."""
    return run_one_shot


@pytest.fixture
def entered() -> Iterator[Callable[[list[Instrument]], list[Instrument]]]:
    """``entered(instruments)`` enters every device; all are exited at teardown."""
    with ExitStack() as stack:

        def enter(instruments: list[Instrument]) -> list[Instrument]:
            for i in instruments:
                stack.enter_context(i.device)
            return instruments

        yield enter
