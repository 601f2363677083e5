"""shotflow's own messages in the Prefect flow run's log, and Prefect's per-task noise out of it.

Prefect ships only its own loggers to the server. :func:`ship_run_logs` attaches a
handler to the ``flows``, ``tasks`` and ``devices`` loggers (INFO and up) that sends
their records to the log of the flow run in progress (local, deployment or subflow),
and demotes the "Finished in state Completed()" line of every compile/execute task
run to DEBUG: two per shot would bury what a physicist needs to read.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

__all__ = ["SHOTFLOW_LOGGERS", "ship_run_logs"]

SHOTFLOW_LOGGERS = ("flows", "tasks", "devices")
"""The loggers whose records reach the flow run's log."""
LEVEL = logging.INFO
"""The lowest level shipped to the flow run's log (and the loggers' level unless configured)."""
QUIET_TASKS = frozenset({"compile-shots", "execute-shots"})
"""Tasks whose routine INFO lines (task run started, finished) are demoted to DEBUG."""


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


class _QuietTaskRuns(logging.Filter):
    """Demotes the INFO lines of shotflow's own task runs to DEBUG (dropped unless DEBUG is on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and getattr(record, "task_name", None) in QUIET_TASKS:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


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
    task_runs = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, _QuietTaskRuns) for f in task_runs.filters):
        task_runs.addFilter(_QuietTaskRuns())
