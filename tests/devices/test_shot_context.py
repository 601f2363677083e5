import threading
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from devices import DeviceController, DeviceError, ShotContext, ShotContextError, ShotExchange, run_blocking

pytestmark = pytest.mark.anyio


async def test_nobody_proceeds_until_all_arrive() -> None:
    exchange = ShotExchange(3, {"x": 1.0}, ["a", "b", "c"])
    passed: list[str] = []

    async def arrive(name: str) -> None:
        await exchange.context_for(name).wait_all_devices_ready()
        passed.append(name)

    async with anyio.create_task_group() as tg:
        tg.start_soon(arrive, "a")
        tg.start_soon(arrive, "b")
        await anyio.wait_all_tasks_blocked()
        assert passed == [] and exchange.trigger_time is None
        tg.start_soon(arrive, "c")
    assert sorted(passed) == ["a", "b", "c"]
    assert exchange.trigger_time is not None


async def test_context_exposes_shot() -> None:
    exchange = ShotExchange(7, {"x": 1.5}, ["a"])
    context = exchange.context_for("a")
    assert (context.device_name, context.index, dict(context.parameters)) == ("a", 7, {"x": 1.5})
    assert exchange.context_for("a") is context
    with pytest.raises(KeyError, match="'zz'"):
        exchange.context_for("zz")
    with pytest.raises(TypeError):
        context.parameters["x"] = 2  # type: ignore[index]


class Returns(DeviceController):
    async def run_shot(self, device: Any, instructions: Mapping[str, Any], shot: ShotContext) -> None:
        return None


class Waits(DeviceController):
    async def run_shot(self, device: Any, instructions: Mapping[str, Any], shot: ShotContext) -> None:
        await shot.wait_all_devices_ready()
        shot.signal_data("after", shot.elapsed())


async def test_a_controller_returning_without_the_barrier_counts_as_arrived() -> None:
    exchange = ShotExchange(0, {}, ["quiet", "busy"])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(exchange.run, "quiet", Returns(), None, {})
            tg.start_soon(exchange.run, "busy", Waits(), None, {})
    assert exchange.data["busy.after"] >= 0


async def test_barrier_twice_raises() -> None:
    exchange = ShotExchange(0, {}, ["a"])
    context = exchange.context_for("a")
    await context.wait_all_devices_ready()
    with pytest.raises(ShotContextError, match="twice"):
        await context.wait_all_devices_ready()


async def test_signal_and_wait_between_controllers() -> None:
    exchange = ShotExchange(0, {}, ["camera", "analysis"])
    got: list[Any] = []

    async def analysis() -> None:
        context = exchange.context_for("analysis")
        await context.wait_all_devices_ready()
        got.append(await context.wait_data("camera.image"))

    async def camera() -> None:
        context = exchange.context_for("camera")
        await context.wait_all_devices_ready()
        await anyio.sleep(0.01)
        context.signal_data("image", 42)

    async with anyio.create_task_group() as tg:
        tg.start_soon(analysis)
        tg.start_soon(camera)
    assert got == [42]
    assert exchange.data == {"camera.image": 42}
    # data already signalled is returned at once
    assert await exchange.context_for("analysis").wait_data("camera.image") == 42


async def test_duplicate_and_malformed_labels_raise() -> None:
    context = ShotExchange(2, {}, ["a"]).context_for("a")
    context.signal_data("x", 1)
    with pytest.raises(ShotContextError, match="twice in shot 2"):
        context.signal_data("x", 2)
    with pytest.raises(ShotContextError):
        context.signal_data("a.b", 2)
    with pytest.raises(ShotContextError):
        await context.wait_data("nodot")


async def test_waiting_for_an_absent_or_finished_device_fails_instead_of_hanging() -> None:
    exchange = ShotExchange(1, {}, ["a", "b"])
    with pytest.raises(DeviceError, match="'ghost' does not run"):
        await exchange.context_for("a").wait_data("ghost.image")

    async def waiter() -> None:
        await exchange.context_for("a").wait_data("b.image")

    with pytest.raises(ExceptionGroup) as info:
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            exchange.mark_finished("b")
    (error,) = info.value.exceptions
    assert isinstance(error, DeviceError) and error.device == "a" and "without signalling" in str(error)


async def test_waiters_are_cancellable() -> None:
    exchange = ShotExchange(0, {}, ["a", "b", "c"])
    cancelled: list[str] = []

    async def wait(what: str) -> None:
        context = exchange.context_for(what)
        try:
            if what == "a":
                await context.wait_all_devices_ready()
            else:
                await context.wait_data("c.never")
        except anyio.get_cancelled_exc_class():
            cancelled.append(what)
            raise

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait, "a")
            tg.start_soon(wait, "b")
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert sorted(cancelled) == ["a", "b"]


async def test_timing_relative_to_the_trigger() -> None:
    context = ShotExchange(0, {}, ["a"]).context_for("a")
    with pytest.raises(ShotContextError, match="before the trigger"):
        context.elapsed()
    with pytest.raises(ShotContextError, match="wait_all_devices_ready"):
        await context.wait_until(0.0)
    await context.wait_all_devices_ready()
    assert context.trigger_time is not None
    await context.wait_until(0.02)
    assert context.elapsed() >= 0.02
    before = context.elapsed()
    await context.wait_until(0.0)  # already past: returns at once
    assert context.elapsed() >= before


async def test_run_blocking_runs_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    context = ShotExchange(0, {}, ["a"]).context_for("a")
    assert await run_blocking(threading.get_ident) != loop_thread
    assert await context.run_blocking(lambda a, b: a + b, 1, 2) == 3
    with pytest.raises(ZeroDivisionError):
        await run_blocking(lambda: 1 / 0)


def test_duplicate_device_names_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        ShotExchange(0, {}, ["a", "a"])
