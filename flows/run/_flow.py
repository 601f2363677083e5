"""``run_sequence``: a sequence run as a Prefect flow (DESIGN.md section 1), read top-down."""

from __future__ import annotations

import time

import anyio
from prefect import flow
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.states import Cancelled

from flows._errors import SequenceFailedError
from flows.locks import device_lock
from flows.sequence import SequenceSpec
from tasks.records import Lifecycle, SequenceState

from ._execution import RunEnd, execute
from ._interrupts import Interrupt, watch_interrupts
from ._naming import run_tags, sequence_run_name, tag_flow_run
from ._prepare import Plan, prepare
from ._progress import RunStatus
from ._run_log import ship_run_logs
from ._summary import SequenceResult

__all__ = ["run_sequence"]


@flow(
    name="run-sequence",
    flow_run_name=sequence_run_name,
    log_prints=False,
    validate_parameters=True,
    persist_result=True,
)
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
    status = _run_status()
    lifecycle = Lifecycle(spec.name, run_logger)
    lifecycle.add_hook(lambda old, new: status.update(phase=str(new)))
    plan = await prepare(spec, store)
    status.update(store=str(plan.store))
    await tag_flow_run(run_tags(spec, plan.compilers))
    interrupt = Interrupt()
    end: RunEnd | None = None
    async with watch_interrupts(interrupt):
        with interrupt.scope():
            async with device_lock(
                plan.compilers,
                mode=spec.execution.device_lock,
                timeout=spec.execution.device_lock_timeout,
                on_busy=lambda message: status.update(phase=message),
            ):
                end = await execute(
                    plan,
                    resume=resume,
                    lifecycle=lifecycle,
                    interrupt=interrupt,
                    status=status,
                    log=run_logger,
                    started=started,
                )
    if end is None:  # interrupted while waiting for the devices: nothing was touched
        lifecycle.move(SequenceState.INTERRUPTED)
        status.update(state=str(SequenceState.INTERRUPTED))
        message = f"sequence interrupted ({interrupt.reason}) while waiting for its devices; nothing ran"
        run_logger.info("%s", message)
        return Cancelled(message=message)  # type: ignore[return-value]
    run_logger.info(
        "sequence %s %s: %d/%s shots in %s",
        spec.name,
        end.outcome.state,
        end.result.completed_shots,
        plan.expected if plan.expected is not None else "?",
        plan.store,
    )
    return _conclude(end, plan)


def _run_status() -> RunStatus:
    """The run's progress, named after the flow run, published at once."""
    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    status = RunStatus(
        str(flow_run.id) if flow_run is not None else None, flow_run.name if flow_run is not None else None
    )
    status.publish()
    return status


def _conclude(end: RunEnd, plan: Plan) -> SequenceResult:
    """The flow's end from the verdict: the result, a Cancelled state, or SequenceFailedError.

    A cancellation that came from outside this flow (not an interrupt it saw) is re-raised.
    """
    failure = end.failure
    if isinstance(failure, anyio.get_cancelled_exc_class()) and end.interrupt_reason is None:
        raise failure  # cancelled from outside this flow: propagate once cleaned up
    if end.outcome.state is SequenceState.INTERRUPTED:
        reason = end.interrupt_reason or type(failure).__name__
        message = f"sequence interrupted ({reason}); {end.result.completed_shots} shots kept in {plan.store}"
        return Cancelled(message=message, data=end.result)  # type: ignore[return-value]
    if end.outcome.state is SequenceState.FAILED:
        message = end.result.error["message"] if end.result.error else "failed"
        raise SequenceFailedError(f"{message} (store: {plan.store})", end.result) from failure
    return end.result
