"""The end of a run: cleanup steps, each guarded so one failure never skips the others."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["Cleanup"]

logger = logging.getLogger(__name__)


class Cleanup:
    """Steps that end a run (record the final state, publish progress and summary), run in order.

    Each step runs shielded from cancellation (it bounds its own blocking work). A
    step that raises is logged to ``log`` (the flow run's log) and kept in
    :attr:`failures`; the next steps still run. :meth:`run` never raises: the
    caller decides what a failed step means (a run that had no error of its own
    raises :attr:`first_failure`; a run's own error is never replaced by one).
    Single use.
    """

    def __init__(self, log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger) -> None:
        self._log = log
        self._steps: list[tuple[str, Callable[[], object]]] = []
        self.failures: list[tuple[str, Exception]] = []

    def add(self, what: str, step: Callable[[], Awaitable[object] | object]) -> None:
        """Run ``step()`` (a plain call or a coroutine function) at :meth:`run`; ``what`` names it in the log."""
        self._steps.append((what, step))

    async def run(self) -> None:
        """Run every step in order, shielded; failures are logged and kept, never raised."""
        steps, self._steps = self._steps, []
        with anyio.CancelScope(shield=True):
            for what, step in steps:
                try:
                    result = step()
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:  # noqa: BLE001 - kept as secondary, the other steps still run
                    self._log.error("could not %s: %s: %s", what, type(exc).__name__, exc, exc_info=exc)
                    self.failures.append((what, exc))

    @property
    def first_failure(self) -> Exception | None:
        """The error of the first step that failed, with the others as notes; None if every step succeeded."""
        if not self.failures:
            return None
        _, first = self.failures[0]
        for what, other in self.failures[1:]:
            note = f"then could not {what}: {type(other).__name__}: {other}"
            if note not in getattr(first, "__notes__", ()):
                first.add_note(note)
        return first
