"""Where CPU-heavy compilers run: a worker thread while they are quick, the process pool once a
shot takes them over PROCESS_AFTER_S, and the pool from the first shot when ``workers`` is given."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import pytest
from simlab import lab_spec

from devices import DeviceCompiler, Shot
from flows.sequence import SequenceRuntime, iter_shots
from tasks.engine import ShotCompiler
from tasks.engine._compiler import PROCESS_AFTER_S


class _Heavy(DeviceCompiler):
    """Flagged CPU-heavy; says which process compiled the shot, taking ``cost`` seconds of CPU."""

    compile_in_process = True
    cost = 0.0

    def compile_initialization_parameters(self) -> Mapping[str, Any]:
        return {}

    def compile_shot_parameters(self, shot: Shot) -> Mapping[str, Any]:
        end = time.perf_counter() + self.cost
        while time.perf_counter() < end:
            pass
        return {"pid": os.getpid(), "index": shot.index}


class _Slow(_Heavy):
    cost = 5 * PROCESS_AFTER_S


def _compilers(kind: type[_Heavy]) -> tuple[dict[str, DeviceCompiler], list[Shot]]:
    spec = lab_spec(shots=40, devices=("rf",))
    runtime = SequenceRuntime(spec)
    return {"heavy": kind("heavy", spec.devices["rf"], runtime)}, list(iter_shots(spec))


@pytest.mark.anyio
async def test_a_quick_heavy_compiler_stays_in_a_thread() -> None:
    compilers, shots = _compilers(_Heavy)
    async with ShotCompiler.open(compilers) as compiler:
        pids = {(await compiler.compile(shot)).instructions["heavy"]["pid"] for shot in shots}
        assert not compiler.uses_processes
    assert pids == {os.getpid()}


@pytest.mark.anyio
async def test_a_slow_heavy_compiler_moves_to_the_processes_once_they_are_up() -> None:
    compilers, shots = _compilers(_Slow)
    async with ShotCompiler.open(compilers) as compiler:
        first = await compiler.compile(shots[0])
        assert first.instructions["heavy"]["pid"] == os.getpid()  # measured in the thread, then the pool starts
        await compiler.warm_up()  # a test's wait for the processes to be up: the run goes on meanwhile
        later = [await compiler.compile(shot) for shot in shots[1:4]]
        assert compiler.uses_processes
    assert {c.instructions["heavy"]["pid"] for c in later}.isdisjoint({os.getpid()})
    assert [c.instructions["heavy"]["index"] for c in later] == [1, 2, 3]


@pytest.mark.anyio
async def test_given_workers_compile_in_processes_from_the_first_shot() -> None:
    compilers, shots = _compilers(_Heavy)
    async with ShotCompiler.open(compilers, workers=1) as compiler:
        assert compiler.uses_processes
        first = await compiler.compile(shots[0])
    assert first.instructions["heavy"]["pid"] != os.getpid()
