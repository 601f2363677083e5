"""``run_sequence``: a sequence run as a Prefect flow (DESIGN.md section 1), read top-down."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Annotated

import anyio
from prefect import flow
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.states import Cancelled
from pydantic import WithJsonSchema

from flows._errors import SequenceFailedError, SpecError
from flows.locks import device_lock
from flows.sequence import SequenceSpec, apply_overrides, load_spec_text
from tasks.records import Lifecycle, SequenceState

from ._execution import RunEnd, execute
from ._interrupts import Interrupt, interrupted_by, watch_interrupts
from ._naming import run_tags, sequence_run_name, tag_flow_run
from ._prepare import Plan, prepare
from ._progress import RunStatus
from ._run_log import quiet_interrupted_tasks, ship_run_logs
from ._stopped_tasks import cancel_stopped_task_runs
from ._summary import SequenceResult

__all__ = ["run_sequence", "run_sequence_yaml"]

logger = logging.getLogger(__name__)


OVERRIDES_SCHEMA = {
    "type": "object",
    "patternProperties": {
        r"^[A-Za-z][A-Za-z0-9_.\-]*$": {"type": "string", "description": "An expression with units, e.g. '2 ms'."}
    },
}
"""The form's schema of ``overrides``: a name -> expression map, which the Prefect UI shows as a JSON
editor (for a plain ``additionalProperties`` map it shows an empty box one cannot type in)."""


@flow(
    name="run-sequence",
    flow_run_name=sequence_run_name,
    log_prints=False,
    validate_parameters=True,
    persist_result=True,
)
async def run_sequence(
    spec: SequenceSpec,
    store: Annotated[str | None, WithJsonSchema({"type": "string"})] = "",
    resume: bool = False,
    overrides: Annotated[dict[str, str], WithJsonSchema(OVERRIDES_SCHEMA)] = {},  # noqa: B006 - never mutated
) -> SequenceResult:
    """Run a sequence: initialise its devices, compile and execute every shot, store the results.

    The overrides are applied first and the spec they make is validated whole; a refusal is the
    first error of the run's log and nothing is touched. Then everything that can be checked
    without instruments is checked (paths, calibrated values, compilers), and the devices'
    hardware locks are taken (waiting, or failing fast with DeviceBusyError, per
    execution.device_lock). Returns a SequenceResult when the sequence finishes. A failed
    sequence raises SequenceFailedError (the flow run ends Failed); an interrupted one ends the
    flow run Cancelled. In every case the devices are exited and the completed shots are durable
    in the store.

    Args:
        spec: The sequence: its global parameters, scan, timeline, devices, execution and storage.
        store: The zarr folder to write, e.g. results/scan/run1.zarr. Empty (or None, from Python):
            a new folder STORAGE ROOT/SEQUENCE NAME/START TIME.zarr.
        resume: Continue the interrupted run in this store from its first shot not completed;
            the store must hold the same spec.
        overrides: Values that replace the spec's for this run, as name: expression, e.g.
            center_frequency: 80.2 MHz or devices.camera.exposure: 2 ms. A name is a global
            parameter or devices.DEVICE.SETTING. The store records the spec with them applied.

    """
    ship_run_logs()
    return await _run(spec, store, resume, overrides)


@flow(
    name="run-sequence-yaml",
    flow_run_name=sequence_run_name,
    log_prints=False,
    validate_parameters=True,
    persist_result=True,
)
async def run_sequence_yaml(
    spec_yaml: str,
    store: Annotated[str | None, WithJsonSchema({"type": "string"})] = "",
    overrides: Annotated[dict[str, str], WithJsonSchema(OVERRIDES_SCHEMA)] = {},  # noqa: B006 - never mutated
) -> SequenceResult:
    """Run a sequence given as YAML (or JSON) text: exactly what ``shotflow run FILE`` reads from FILE.

    The text is parsed and validated first; a refusal (the line of a syntax error, or every
    ``field.path: problem``) is the first error of the run's log and nothing is touched. Then the
    run goes as for run-sequence.

    Args:
        spec_yaml: The sequence spec as the text of a YAML file, e.g. the whole of examples/resonance.yaml.
        store: The zarr folder to write, e.g. results/scan/run1.zarr. Empty: a new folder
            STORAGE ROOT/SEQUENCE NAME/START TIME.zarr.
        overrides: Values that replace the spec's for this run, as name: expression, e.g.
            devices.camera.exposure: 2 ms.

    """
    ship_run_logs()
    try:
        spec = load_spec_text(spec_yaml, source="spec_yaml")
    except SpecError as exc:
        logger.error("%s", exc)
        raise
    return await _run(spec, store, False, overrides)


async def _run(spec: SequenceSpec, store: str | None, resume: bool, overrides: Mapping[str, str]) -> SequenceResult:
    """The body of the run flows (see :func:`run_sequence`)."""
    run_logger = get_run_logger()
    spec = _with_overrides(spec, overrides)
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
        with quiet_interrupted_tasks(interrupt) as stopped, interrupt.scope():
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
                    overrides=overrides,
                )
    if interrupt.reason is not None:  # its task runs end Cancelled, as the run does
        await cancel_stopped_task_runs(
            stopped, f"stopped: the sequence was interrupted {interrupted_by(interrupt.reason)}"
        )
    if end is None:  # interrupted while waiting for the devices: nothing was touched
        lifecycle.move(SequenceState.INTERRUPTED)
        status.update(state=str(SequenceState.INTERRUPTED))
        by = interrupted_by(interrupt.reason or "interrupted")
        message = f"sequence {spec.name} interrupted {by} while waiting for its devices; nothing ran"
        logger.info("%s", message)
        return Cancelled(message=message)  # type: ignore[return-value]
    if end.conclusion is not None:  # who interrupted it, at which shot, what was kept, how to continue
        logger.info("%s", end.conclusion)  # shotflow's logger: INFO even when Prefect's loggers say WARNING
    else:
        run_logger.info(
            "sequence %s %s: %d/%s shots in %s",
            spec.name,
            end.outcome.state,
            end.result.completed_shots,
            plan.expected if plan.expected is not None else "?",
            plan.store,
        )
    return _conclude(end, plan)


def _with_overrides(spec: SequenceSpec, overrides: Mapping[str, str]) -> SequenceSpec:
    """``spec`` with ``overrides`` applied; a refusal is logged as the run's first error, then raised."""
    try:
        effective = apply_overrides(spec, overrides)
    except SpecError as exc:
        logger.error("%s", exc)
        raise
    if overrides:
        logger.info("overrides: %s", ", ".join(f"{key} = {value}" for key, value in overrides.items()))
    return effective


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
        message = end.conclusion or f"sequence interrupted ({reason}); {end.result.completed_shots} shots kept"
        return Cancelled(message=message, data=end.result)  # type: ignore[return-value]
    if end.outcome.state is SequenceState.FAILED:
        message = end.result.error["message"] if end.result.error else "failed"
        raise SequenceFailedError(f"{message} (store: {plan.store})", end.result) from failure
    return end.result
