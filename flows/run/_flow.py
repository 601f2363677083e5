"""``run_sequence``: a sequence run as a Prefect flow (DESIGN.md section 1)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from prefect import flow, get_client
from prefect.artifacts import acreate_markdown_artifact
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.states import Cancelled
from pydantic import BaseModel

from devices import Device, DeviceCompiler, DeviceController, DeviceNotUsed, get_device_type
from flows._errors import SequenceFailedError
from flows.locks import device_lock
from flows.sequence import SequenceRuntime, SequenceSpec, count_shots, iter_shots, parameter_units
from tasks.engine import RetryPolicy, ShotCompiler, ShotPipeline, ShotRunner, open_devices, shots_from
from tasks.prefect_tasks import PREFECT_STAGES
from tasks.records import Lifecycle, Phase, SequenceState, first_error
from tasks.store import ShotStoreWriter

from ._calibrated import load_calibrated
from ._progress import ProgressReporter, RunStatus
from ._run_log import ship_run_logs
from ._store_path import resolve_store_path

__all__ = ["SequenceResult", "run_sequence"]

logger = logging.getLogger(__name__)

CANCEL_POLL_INTERVAL = 1.0
"""Seconds between two checks of the flow run's state for a cancellation request."""
INTERRUPT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))
"""Signals that interrupt a run (a service manager's SIGTERM, a terminal's Ctrl-C)."""
SUMMARY_TIMEOUT = 10.0
"""Seconds allowed for publishing the summary artifact."""
RESULTS_ROOT_ENV = "SHOTFLOW_RESULTS_ROOT"
"""When set (deployments, API runs), every store must lie inside this folder."""


class SequenceResult(BaseModel):
    """What a sequence run returns: where its data is and how it ended."""

    store: str
    state: str
    completed_shots: int
    expected_shots: int | None
    error: dict[str, Any] | None = None


class _Interrupt:
    """Cancels the run's scopes on a request (Prefect cancel, SIGINT, SIGTERM) and remembers why."""

    def __init__(self) -> None:
        self._scopes: list[anyio.CancelScope] = []
        self.reason: str | None = None

    def scope(self) -> anyio.CancelScope:
        """A new scope that the interrupt cancels (at once if it was already requested)."""
        scope = anyio.CancelScope()
        if self.reason is not None:
            scope.cancel()
        self._scopes.append(scope)
        return scope

    def request(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            logger.warning("interrupt requested: %s", reason)
        for scope in self._scopes:
            scope.cancel()


async def _watch_prefect_cancellation(interrupt: _Interrupt) -> None:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    flow_run_id = context.flow_run.id
    async with get_client() as client:
        while True:
            await anyio.sleep(CANCEL_POLL_INTERVAL)
            run = None
            try:
                # shielded: cancelling an HTTP call half-way corrupts the client's connection pool
                with anyio.move_on_after(CANCEL_POLL_INTERVAL * 10, shield=True):
                    run = await client.read_flow_run(flow_run_id)
            except Exception as exc:  # noqa: BLE001 - a slow or absent server must not stop the run
                logger.debug("could not read the flow run state: %s", exc)
                continue
            if run is not None and run.state is not None and (run.state.is_cancelling() or run.state.is_cancelled()):
                interrupt.request("cancelled from Prefect")
                return


async def _watch_signals(interrupt: _Interrupt) -> None:
    """Turn SIGINT/SIGTERM into an interrupt (main thread, POSIX; elsewhere Ctrl-C raises
    KeyboardInterrupt, which the run records as interrupted as well)."""
    if threading.current_thread() is not threading.main_thread() or sys.platform == "win32":
        return
    try:
        with anyio.open_signal_receiver(*INTERRUPT_SIGNALS) as signals:
            async for signum in signals:
                interrupt.request(f"received {signal.Signals(signum).name}")
    finally:
        # Closing the receiver resets SIGTERM to the default action (terminate at once). A
        # worker's SIGTERM that arrives after this watcher stopped (e.g. the state poll saw
        # the cancel first) would kill the process before the store records its final state.
        # Ignore it until the run returns: Prefect's flow engine restores its handler then.
        if hasattr(signal, "SIGTERM"):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _build_compilers(spec: SequenceSpec, runtime: SequenceRuntime) -> dict[str, DeviceCompiler]:
    compilers: dict[str, DeviceCompiler] = {}
    for name, config in spec.devices.items():
        device_type = get_device_type(config.type)
        try:
            compilers[name] = device_type.compiler(name, config, runtime)
        except DeviceNotUsed as reason:
            logger.info("device %s is not used by this sequence: %s", name, reason)
    return compilers


def _error_record(error: BaseException) -> dict[str, Any]:
    record: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    for attribute, key in (("shot_index", "shot"), ("device", "device")):
        value = getattr(error, attribute, None)
        if value is not None:
            record[key] = value
    cause = error.__cause__
    if cause is not None:
        record["cause"] = f"{type(cause).__name__}: {cause}"
    return record


def _summary_markdown(result: SequenceResult, duration: float) -> str:
    lines = [
        f"# Sequence {result.state}",
        "",
        "| | |",
        "|---|---|",
        f"| store | `{result.store}` |",
        f"| shots completed | {result.completed_shots} / {result.expected_shots or '?'} |",
        f"| duration | {duration:.1f} s |",
    ]
    if result.error:
        lines.append(f"| error | {result.error.get('message', '')} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _Plan:
    """Everything a run needs, computed before any instrument is touched."""

    spec: SequenceSpec
    store: Path
    calibrated: dict[str, str]
    runtime: SequenceRuntime
    compilers: dict[str, DeviceCompiler]
    expected: int | None
    shot_timeout: float


async def _plan(spec: SequenceSpec, store: str | None) -> _Plan:
    results_root = os.environ.get(RESULTS_ROOT_ENV)
    store_path = resolve_store_path(
        spec, results_root=Path(results_root) if results_root else None, store=Path(store) if store else None
    )
    calibrated = await load_calibrated(spec)
    runtime = SequenceRuntime(spec, calibrated=calibrated)
    return _Plan(
        spec=spec,
        store=store_path,
        calibrated=calibrated,
        runtime=runtime,
        compilers=_build_compilers(spec, runtime),
        expected=count_shots(spec, calibrated=calibrated),
        shot_timeout=runtime.evaluate(spec.execution.shot_timeout, unit="s"),
    )


@dataclass
class _Outcome:
    state: SequenceState
    error: dict[str, Any] | None
    failure: BaseException | None
    completed: int
    interrupt_reason: str | None


async def _execute(
    plan: _Plan, resume: bool, lifecycle: Lifecycle, interrupt: _Interrupt, status: RunStatus
) -> _Outcome:
    """Store, devices, pipeline; the one cleanup path records the final state in the store."""
    spec = plan.spec
    failure: BaseException | None = None
    lifecycle.move(Phase.INITIALIZING)
    async with ShotStoreWriter.open(
        plan.store,
        spec_json=spec.model_dump_json(),
        expected_shots=plan.expected,
        parameter_units=parameter_units(spec, calibrated=plan.calibrated),
        resume=resume,
    ) as writer:
        logger.info("sequence %s: writing to %s", spec.name, plan.store)
        already = writer.completed
        shots = (s for s in iter_shots(spec, calibrated=plan.calibrated) if s.index not in already)
        pipeline: ShotPipeline | None = None
        status.count(lambda: len(already) + (pipeline.completed if pipeline is not None else 0), plan.expected)
        reporter = ProgressReporter(status)
        try:
            with interrupt.scope():
                async with AsyncExitStack() as stack, anyio.create_task_group() as watchers:
                    watchers.start_soon(reporter.run)
                    devices: dict[str, Device] = {
                        name: get_device_type(spec.devices[name].type).device(
                            **compiler.compile_initialization_parameters()
                        )
                        for name, compiler in plan.compilers.items()
                    }
                    compiler = await stack.enter_async_context(
                        ShotCompiler.open(plan.compilers, workers=spec.execution.compile_workers)
                    )
                    status.update(phase="entering devices")
                    async with anyio.create_task_group() as setup:
                        setup.start_soon(compiler.warm_up)
                        entered = await stack.enter_async_context(open_devices(devices))
                    controllers: dict[str, DeviceController] = {
                        name: get_device_type(spec.devices[name].type).controller() for name in entered
                    }
                    runner = ShotRunner(
                        entered,
                        controllers,
                        timeout=plan.shot_timeout,
                        retry=RetryPolicy(
                            max_attempts=spec.execution.retry.max_attempts,
                            retry_on=frozenset(spec.execution.retry.retry_on),
                        ),
                    )
                    pipeline = ShotPipeline(
                        shots_from(shots),
                        compiler,
                        runner,
                        writer.write,
                        lookahead=spec.execution.lookahead,
                        shots_per_task=spec.execution.shots_per_task,
                        stages=PREFECT_STAGES,
                    )
                    lifecycle.move(Phase.RUNNING)
                    outcome = await pipeline.run()
                    if outcome.compile_error is not None:
                        lifecycle.move(Phase.STOPPING)
                        failure = outcome.compile_error
                    watchers.cancel_scope.cancel()
        except BaseException as error:  # noqa: BLE001 - classified by _final_state; foreign cancellation re-raised later
            failure = first_error(error)
        finally:
            state, error_record = _final_state(failure, interrupt)
            lifecycle.move(
                {SequenceState.FINISHED: Phase.FINISHED, SequenceState.INTERRUPTED: Phase.INTERRUPTED}.get(
                    state, Phase.FAILED
                )
            )
            with anyio.CancelScope(shield=True):
                try:
                    await writer.finish(state, error_record)
                finally:
                    status.update(state=str(state))
                    await reporter.finish()
        return _Outcome(state, error_record, failure, len(writer.completed), interrupt.reason)


async def _publish_summary(result: SequenceResult, duration: float) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(SUMMARY_TIMEOUT):
        try:
            await acreate_markdown_artifact(
                _summary_markdown(result, duration), key="sequence-summary", description=f"sequence {result.store}"
            )
        except Exception as exc:  # noqa: BLE001 - the store, not Prefect, is the record
            logger.warning("could not publish the summary artifact: %s", exc)


@flow(name="run-sequence", log_prints=False, validate_parameters=True, persist_result=True)
async def run_sequence(spec: SequenceSpec, store: str | None = None, resume: bool = False) -> SequenceResult:
    """Run a sequence: initialise its devices, compile and execute every shot, store the results.

    ``store`` is the zarr folder to write (default ``<storage.root>/<name>/<time>.zarr``);
    ``resume`` continues an interrupted store from its first shot that is not completed.
    Everything that can be checked without instruments is checked first (paths,
    calibrated values, compilers); then the devices' hardware locks are taken
    (waiting or failing fast with :class:`DeviceBusyError`, per ``execution.device_lock``).
    Returns a :class:`SequenceResult` when the sequence finishes. A failed sequence
    raises :class:`SequenceFailedError` (the flow run ends Failed); an interrupted
    one ends the flow run Cancelled. In every case the devices are exited and the
    completed shots are durable in the store.
    """
    ship_run_logs()
    run_logger = get_run_logger()
    started = time.monotonic()
    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    status = RunStatus(
        str(flow_run.id) if flow_run is not None else None, flow_run.name if flow_run is not None else None
    )
    status.publish()
    lifecycle = Lifecycle(spec.name, run_logger, on_move=lambda phase: status.update(phase=str(phase)))
    plan = await _plan(spec, store)
    status.update(store=str(plan.store))
    interrupt = _Interrupt()
    outcome: _Outcome | None = None
    try:
        async with anyio.create_task_group() as watchers:
            watchers.start_soon(_watch_signals, interrupt)
            watchers.start_soon(_watch_prefect_cancellation, interrupt)
            try:
                with interrupt.scope():
                    async with device_lock(
                        plan.compilers,
                        mode=spec.execution.device_lock,
                        timeout=spec.execution.device_lock_timeout,
                        on_busy=lambda message: status.update(phase=message),
                    ):
                        outcome = await _execute(plan, resume, lifecycle, interrupt, status)
            finally:
                watchers.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the run's own error (DeviceBusyError...), as it was raised
        raise first_error(group) from None
    if outcome is None:  # interrupted while waiting for the devices: nothing was touched
        lifecycle.move(Phase.INTERRUPTED)
        status.update(state=str(SequenceState.INTERRUPTED))
        message = f"sequence interrupted ({interrupt.reason}) while waiting for its devices; nothing ran"
        run_logger.info("%s", message)
        return Cancelled(message=message)  # type: ignore[return-value]
    result = SequenceResult(
        store=str(plan.store),
        state=str(outcome.state),
        completed_shots=outcome.completed,
        expected_shots=plan.expected,
        error=outcome.error,
    )
    await _publish_summary(result, time.monotonic() - started)
    run_logger.info(
        "sequence %s %s: %d/%s shots in %s",
        spec.name,
        outcome.state,
        outcome.completed,
        plan.expected if plan.expected is not None else "?",
        plan.store,
    )
    failure = outcome.failure
    if isinstance(failure, anyio.get_cancelled_exc_class()) and outcome.interrupt_reason is None:
        raise failure  # cancelled from outside this flow: propagate once cleaned up
    if outcome.state == SequenceState.INTERRUPTED:
        reason = outcome.interrupt_reason or type(failure).__name__
        message = f"sequence interrupted ({reason}); {outcome.completed} shots kept in {plan.store}"
        return Cancelled(message=message, data=result)  # type: ignore[return-value]
    if outcome.state == SequenceState.FAILED:
        raise SequenceFailedError(
            f"{result.error['message'] if result.error else 'failed'} (store: {plan.store})", result
        ) from failure
    return result


def _final_state(failure: BaseException | None, interrupt: _Interrupt) -> tuple[SequenceState, dict[str, Any] | None]:
    if failure is None and interrupt.reason is None:
        return SequenceState.FINISHED, None
    if (
        interrupt.reason is not None
        or isinstance(failure, (KeyboardInterrupt, anyio.get_cancelled_exc_class()))
        or type(failure).__name__ == "TerminationSignal"
    ):
        reason = interrupt.reason or type(failure).__name__
        return SequenceState.INTERRUPTED, {"type": "Interrupted", "message": f"interrupted: {reason}"}
    assert failure is not None
    return SequenceState.FAILED, _error_record(failure)
