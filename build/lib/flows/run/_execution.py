"""A run's execution: the store, the devices, the shot pipeline, the one verdict and the guarded cleanup."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio
from prefect.exceptions import TerminationSignal

from devices import Device, DeviceController, Shot, ShotCompilationError, get_device_type
from flows.sequence import iter_shots
from tasks.engine import (
    RetryPolicy,
    ShotAnalyser,
    ShotCompiler,
    ShotPipeline,
    ShotRunner,
    analysed,
    open_devices,
    shots_from,
)
from tasks.prefect_tasks import PREFECT_STAGES
from tasks.records import FINAL_STATES, Lifecycle, Outcome, SequenceState, decide_outcome, first_error
from tasks.store import ShotStoreWriter, StoreError, compact_store

from ._cleanup import Cleanup
from ._data_layout import data_layout
from ._interrupts import Interrupt, interrupted_by
from ._live_plot import LivePlotter
from ._naming import BatchNames
from ._prepare import Plan, check_resume
from ._progress import ProgressReporter, RunStatus
from ._summary import SequenceResult, interrupted_text, publish_summary

__all__ = ["RunEnd", "execute"]

logger = logging.getLogger(__name__)

INTERRUPT_TYPES: tuple[type[BaseException], ...] = (TerminationSignal,)
"""Errors that end a run as interrupted (besides Ctrl-C and cancellation): Prefect's termination signal."""


@dataclass(frozen=True)
class RunEnd:
    """How an executed run ended: its verdict, what it returns, and the error that caused the verdict.

    ``conclusion`` is the line that tells an interrupted run's end (:func:`interrupted_text`), else None.
    """

    outcome: Outcome
    result: SequenceResult
    failure: BaseException | None
    interrupt_reason: str | None
    conclusion: str | None = None


async def execute(
    plan: Plan,
    *,
    resume: bool,
    lifecycle: Lifecycle,
    interrupt: Interrupt,
    status: RunStatus,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
    started: float,
    overrides: Mapping[str, str] | None = None,
) -> RunEnd:
    """Open the store, enter the devices and run every shot; then decide the verdict once and clean up.

    The run's error (compile, device, interrupt...) is caught, judged by
    :func:`tasks.records.decide_outcome` and returned in :class:`RunEnd`, never
    raised. The cleanup (final state in the store, progress, summary) runs every
    step even if one fails; a failed step is logged and raised only when the run
    had no error of its own. Raises the store's errors when it cannot be opened. The store
    records ``overrides`` (what the run changed in the spec it was given) beside the spec.
    """
    spec = plan.spec
    lifecycle.move(SequenceState.INITIALIZING)
    if resume:  # the spec must still describe the shots the store holds (an edited spec attribute)
        await anyio.to_thread.run_sync(check_resume, spec, plan.store, plan.calibrated)
    async with ShotStoreWriter.open(
        plan.store,
        spec_json=spec.model_dump_json(),
        overrides=overrides,
        expected_shots=plan.expected,
        parameter_units=plan.runtime.plan.parameter_units(),
        axes=plan.runtime.plan.axes_record(),
        resume=resume,
        confine_to=plan.results_root,  # checked again once the store's lock is held
    ) as writer:
        # the store's history records every transition from here on (finish() records the final one)
        writer.record_state(lifecycle.state)
        lifecycle.add_hook(lambda old, new: None if new in FINAL_STATES else writer.record_state(new))
        logger.info("sequence %s: writing to %s", spec.name, plan.store)
        already = writer.completed
        shots = (s for s in iter_shots(spec, calibrated=plan.calibrated) if s.index not in already)
        status.count(lambda: len(already), plan.expected)
        reporter = ProgressReporter(status)
        live_plot = LivePlotter(spec.live_plot, plan.store, lambda: len(writer.completed))
        failure: BaseException | None = None
        try:
            with interrupt.scope():
                async with anyio.create_task_group() as progress:
                    progress.start_soon(reporter.run)
                    progress.start_soon(live_plot.run)
                    failure = await _run_shots(plan, shots, writer, lifecycle, status)
                    progress.cancel_scope.cancel()
        except BaseException as error:  # noqa: BLE001 - judged below; a foreign cancellation is re-raised by the flow
            failure = first_error(error)
        outcome = decide_outcome(
            failure,
            interrupt_reason=interrupt.reason,
            store_failure=getattr(writer, "failure", None),
            interrupt_types=INTERRUPT_TYPES,
        )
        lifecycle.move(outcome.state)

        def result() -> SequenceResult:
            return SequenceResult(
                store=str(plan.store),
                state=str(outcome.state),
                completed_shots=len(writer.completed),
                expected_shots=plan.expected,
                error=dict(outcome.error) if outcome.error is not None else None,
            )

        conclusion: str | None = None

        def conclude() -> None:  # once the store is final: every durable shot is counted
            nonlocal conclusion
            if outcome.state is SequenceState.INTERRUPTED:
                kept = writer.completed
                stopped_at = next(
                    (s.index for s in iter_shots(spec, calibrated=plan.calibrated) if s.index not in kept), None
                )
                by = interrupted_by(interrupt.reason or type(failure).__name__)
                conclusion = interrupted_text(spec.name, by, stopped_at, result())

        cleanup = Cleanup(log)
        cleanup.add("record the final state in the store", lambda: writer.finish(outcome.state, outcome.error))
        cleanup.add("describe the interrupt", conclude)
        cleanup.add("publish the final state", lambda: status.update(state=str(outcome.state)))
        cleanup.add("publish the final progress", reporter.finish)
        cleanup.add("draw the final live plot", lambda: live_plot.update(final=True))
        cleanup.add(
            "publish the summary",
            lambda: publish_summary(
                result(), time.monotonic() - started, (spec.live_plot.data, spec.live_plot.against), conclusion
            ),
        )
        await cleanup.run()
        if outcome.state is SequenceState.FINISHED and cleanup.first_failure is not None:
            raise cleanup.first_failure  # the run had no error of its own: this one is it
        end = RunEnd(outcome, result(), failure, interrupt.reason, conclusion)
    await _compact(plan.store)  # the writer's lock is released: compaction takes it
    return end


async def _compact(path: Path) -> None:
    """Compact the ended run's store in a worker thread (shielded: every end is compacted); a
    store that cannot be compacted is logged, never an error of the run (its shots are intact)."""
    try:
        with anyio.CancelScope(shield=True):
            report = await anyio.to_thread.run_sync(compact_store, path)
    except StoreError as exc:
        logger.warning("store %s left uncompacted: %s", path, exc)
        return
    logger.info(report.describe())


async def _run_shots(
    plan: Plan, shots: Iterator[Shot], writer: ShotStoreWriter, lifecycle: Lifecycle, status: RunStatus
) -> ShotCompilationError | None:
    """Enter the devices and run the pipeline; returns the compile error that stopped it, if any.

    Raises the devices' and the shots' errors; every entered device is exited.
    """
    spec = plan.spec
    async with AsyncExitStack() as stack:
        declarations = {name: compiler.declare_data() for name, compiler in plan.compilers.items()}
        writer.declare(data_layout(declarations, spec.analyses))
        devices: dict[str, Device] = {
            name: get_device_type(spec.devices[name].type).device(**compiler.compile_initialization_parameters())
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
            declarations=declarations,
            retry=RetryPolicy(
                max_attempts=spec.execution.retry.max_attempts,
                retry_on=frozenset(spec.execution.retry.retry_on),
            ),
        )
        store = await stack.enter_async_context(analysed(writer.write, ShotAnalyser(spec.analyses)))
        pipeline = ShotPipeline(
            shots_from(shots),
            compiler,
            runner,
            store,
            lookahead=spec.execution.lookahead,
            shots_per_task=spec.execution.shots_per_task,
            stages=PREFECT_STAGES,
            describe=BatchNames(plan.runtime.plan.parameter_units()),
        )
        already = len(writer.completed)
        status.count(lambda: already + pipeline.completed, plan.expected)
        lifecycle.move(SequenceState.RUNNING)
        outcome = await pipeline.run()
        if outcome.compile_error is not None:
            lifecycle.move(SequenceState.STOPPING)
        return outcome.compile_error
