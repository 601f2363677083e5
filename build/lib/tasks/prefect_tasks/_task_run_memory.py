"""What Prefect keeps per task run in the flow run's context, and dropping it."""

from __future__ import annotations

from prefect.context import FlowRunContext, TaskRunContext

__all__ = ["forget_task_run_assets"]


def forget_task_run_assets() -> None:
    """Drop the current task run's entry from the flow run context's ``task_run_assets``.

    Prefect records, for every task run, the assets it passes downstream, and keeps them
    until the flow run ends: one set per task run, so memory grows with the length of a
    sequence (bench/engine_memory.py). Our task runs pass no futures to one another, so
    nothing reads the entry. Call from inside a task; a no-op outside one.
    """
    flow_context = FlowRunContext.get()
    task_context = TaskRunContext.get()
    if flow_context is None or task_context is None:
        return
    flow_context.task_run_assets.pop(task_context.task_run.id, None)
