"""shotflow's own messages in the Prefect flow run's log, and Prefect's per-task noise out of it.

Prefect ships only its own loggers to the server. :func:`ship_run_logs` attaches a
handler to the ``flows``, ``tasks`` and ``devices`` loggers (INFO and up) that sends
their records to the log of the flow run in progress (local, deployment or subflow),
and demotes the "Finished in state Completed()" line of every compile/execute task
run to DEBUG: two per shot would bury what a physicist needs to read.

A cancel reads as a cancel: while a run is interrupted (:func:`quiet_interrupted_tasks`),
the "Crash detected!" and "Finished in state Crashed/Cancelled" ERROR lines of the task
runs the interrupt stops are demoted to DEBUG as well (a task's crash outside an interrupt
is still an ERROR), and the "Finished in state Cancelled" line of shotflow's flows is INFO.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

from ._interrupts import Interrupt

__all__ = ["SHOTFLOW_FLOWS", "SHOTFLOW_LOGGERS", "quiet_interrupted_tasks", "ship_run_logs"]

SHOTFLOW_LOGGERS = ("flows", "tasks", "devices")
"""The loggers whose records reach the flow run's log."""
LEVEL = logging.INFO
"""The lowest level shipped to the flow run's log (and the loggers' level unless configured)."""
QUIET_TASKS = frozenset({"compile-shots", "execute-shots"})
"""Tasks whose routine INFO lines (task run started, finished) are demoted to DEBUG."""
SHOTFLOW_FLOWS = frozenset({"run-sequence", "resume-sequence"})
"""Flows whose final "Finished in state Cancelled" line is INFO: an interrupt is how they stop."""
STOPPED_TASK_LINES = ("Crash detected!", "Finished in state Crashed", "Finished in state Cancelled")
"""The beginnings of the ERROR lines Prefect's task engine logs for a task run an interrupt stops."""

_interrupts: dict[str, tuple[Interrupt, list[str]]] = {}
"""The interrupt of every flow run in progress in this process, by flow run id, with the ids of
the task runs it stopped (whose crash was demoted)."""


class _RunLogHandler(APILogHandler):
    """Sends a record to the current flow run's log; drops it quietly outside a run."""

    def emit(self, record: logging.LogRecord) -> None:
        if (
            getattr(record, "flow_run_id", None) is None
            and FlowRunContext.get() is None
            and TaskRunContext.get() is None
        ):
            return
        super().emit(record)


def _demote(record: logging.LogRecord) -> bool:
    """Make ``record`` DEBUG; whether it is still emitted (only when its logger has DEBUG on)."""
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class _QuietTaskRuns(logging.Filter):
    """Demotes the INFO lines of shotflow's own task runs to DEBUG (dropped unless DEBUG is on),
    and their crash and final-state lines while their flow run is interrupted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "task_name", None) not in QUIET_TASKS:
            return True
        if record.levelno == logging.INFO:
            return _demote(record)
        if record.levelno >= logging.WARNING and _stopped_by_interrupt(record):
            return _demote(record)
        return True


def _stopped_by_interrupt(record: logging.LogRecord) -> bool:
    """Whether ``record`` is a stopped-task line of an interrupted run; a crash's task run is remembered."""
    interrupt, stopped = _interrupts.get(str(getattr(record, "flow_run_id", None)), (None, []))
    if interrupt is None or interrupt.reason is None:
        return False
    message = record.getMessage()
    if not message.startswith(STOPPED_TASK_LINES):
        return False
    task_run_id = getattr(record, "task_run_id", None)
    if message.startswith("Crash detected!") and task_run_id is not None:
        stopped.append(str(task_run_id))
    return True


class _CancelledFlowsAtInfo(logging.Filter):
    """Logs the "Finished in state Cancelled" line of shotflow's flows at INFO (Prefect says ERROR)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno > logging.INFO
            and getattr(record, "flow_name", None) in SHOTFLOW_FLOWS
            and record.getMessage().startswith("Finished in state Cancelled")
        ):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


@contextmanager
def quiet_interrupted_tasks(interrupt: Interrupt) -> Iterator[list[str]]:
    """While the body runs, the task runs of the current flow run that ``interrupt`` stops
    (once requested) log their crash at DEBUG, not ERROR; yields the list that collects their ids
    (Prefect records them Crashed: :func:`~._stopped_tasks.cancel_stopped_task_runs` corrects that)."""
    stopped: list[str] = []
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        yield stopped
        return
    key = str(context.flow_run.id)
    _interrupts[key] = (interrupt, stopped)
    try:
        yield stopped
    finally:
        _interrupts.pop(key, None)


def ship_run_logs() -> None:
    """Send shotflow's log records to the Prefect run in progress; idempotent.

    A logger already shipping to the API (``PREFECT_LOGGING_EXTRA_LOGGERS``) is left
    alone; a logger with no level of its own gets :data:`LEVEL`.
    """
    for name in SHOTFLOW_LOGGERS:
        target = logging.getLogger(name)
        if target.level == logging.NOTSET:
            target.setLevel(LEVEL)
        if not any(isinstance(h, APILogHandler) for h in target.handlers):
            handler = _RunLogHandler()
            handler.setLevel(LEVEL)
            target.addHandler(handler)
    for name, kind in (("prefect.task_runs", _QuietTaskRuns), ("prefect.flow_runs", _CancelledFlowsAtInfo)):
        target = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in target.filters):
            target.addFilter(kind())
