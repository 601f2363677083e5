"""Fixtures for the devices tests: a picklable SequenceContext stand-in and shot helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from fake_sequence import TIMELINE, UNITS, FakeSequence  # noqa: E402,F401 - picklable by module name

from devices import (
    Device,
    DeviceCompiler,
    DeviceConfiguration,
    DeviceController,
    Shot,
    ShotExchange,
    get_device_type,
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
