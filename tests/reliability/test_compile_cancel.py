"""A compile cancelled half-way (a later shot's compile after an earlier shot failed) is cancelled
cleanly: it raises the cancellation, never a KeyError of the part that did not finish."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from _rlab import lab_spec

from devices import DeviceCompiler, Shot
from flows.sequence import SequenceRuntime, iter_shots
from tasks.engine import ShotCompiler


class _SlowThreadCompiler(DeviceCompiler):
    """Compiles in a worker thread (not cancellable) for longer than the cancel takes to arrive."""

    def compile_initialization_parameters(self) -> Mapping[str, Any]:
        return {}

    def compile_shot_parameters(self, shot: Shot) -> Mapping[str, Any]:
        time.sleep(0.6)
        return {"slow": True}


class _SlowProcessCompiler(_SlowThreadCompiler):
    """Compiles in a worker process; still running when the cancel arrives (its wait is abandoned)."""

    compile_in_process = True

    def compile_shot_parameters(self, shot: Shot) -> Mapping[str, Any]:
        time.sleep(0.4)
        return {"process": True}


@pytest.mark.anyio
async def test_cancelled_compile_raises_cancelled_not_key_error() -> None:
    spec = lab_spec(shots=2, devices=("sequencer", "rf"))
    runtime = SequenceRuntime(spec)
    in_process = _SlowProcessCompiler("in_process", spec.devices["rf"], runtime)
    in_thread = _SlowThreadCompiler("in_thread", spec.devices["rf"], runtime)
    shot = next(iter_shots(spec))
    async with ShotCompiler.open({"in_process": in_process, "in_thread": in_thread}, workers=1) as compiler:
        await compiler.warm_up()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(compiler.compile, shot)
                await anyio.sleep(0.2)  # both parts are running
                scope.cancel()
        assert scope.cancelled_caught
