"""The task runs an interrupt stopped end Cancelled, not Crashed, on the Prefect server.

Prefect's task engine records a task run that a cancel scope stops as Crashed ("Execution
was cancelled by the runtime environment."), from an event. Once the run has ended, each
such task run (collected by :func:`~._run_log.quiet_interrupted_tasks`) is set Cancelled
through the API: a later state, so the Crashed event, even recorded after, does not replace it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from uuid import UUID

import anyio
from prefect import get_client
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled

__all__ = ["STOPPED_TASKS_TIMEOUT", "cancel_stopped_task_runs"]

logger = logging.getLogger(__name__)

STOPPED_TASKS_TIMEOUT = 5.0
"""Seconds allowed for setting the stopped task runs Cancelled (the run's end waits for it)."""
NOT_RECORDED_RETRY = 0.2
"""Seconds before asking again for a task run the server has not recorded yet (its events are in flight)."""


async def cancel_stopped_task_runs(task_run_ids: Sequence[str], message: str) -> None:
    """Set each task run Cancelled with ``message``; shielded and bounded, never raises
    (a task run left Crashed is cosmetic: the store and the flow run's state are the record)."""
    if not task_run_ids:
        return
    with anyio.CancelScope(shield=True), anyio.move_on_after(STOPPED_TASKS_TIMEOUT) as bounded:
        try:
            async with get_client() as client:
                for task_run_id in dict.fromkeys(task_run_ids):
                    while True:
                        try:
                            await client.set_task_run_state(UUID(task_run_id), Cancelled(message=message), force=True)
                            break
                        except ObjectNotFound:  # its Pending/Running events are not recorded yet
                            await anyio.sleep(NOT_RECORDED_RETRY)
        except Exception as exc:  # noqa: BLE001 - cosmetic: the run's own end must not fail on it
            logger.debug("stopped task runs left Crashed: %s", exc)
    if bounded.cancelled_caught:
        logger.debug("stopped task runs left Crashed: the server did not answer in %s s", STOPPED_TASKS_TIMEOUT)
