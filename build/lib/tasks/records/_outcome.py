"""How a sequence ended, decided in one place from what went wrong."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from ._failures import error_record
from ._shots import SequenceState

__all__ = ["Outcome", "decide_outcome", "is_interrupt"]


@dataclass(frozen=True)
class Outcome:
    """The final state of a sequence and, unless it finished, the error record kept with it."""

    state: SequenceState
    error: Mapping[str, Any] | None = None


def is_interrupt(error: BaseException | None, interrupt_types: tuple[type[BaseException], ...] = ()) -> bool:
    """Whether ``error`` stops a run without being its fault: Ctrl-C, a cancellation, or one of ``interrupt_types``.

    The caller that knows the orchestrator passes its termination signal (Prefect's
    ``TerminationSignal``) in ``interrupt_types``; this room imports no Prefect.
    """
    try:
        cancelled: type[BaseException] = anyio.get_cancelled_exc_class()
    except RuntimeError:  # no event loop: asyncio's, the only one our runs use
        cancelled = asyncio.CancelledError
    return isinstance(error, (KeyboardInterrupt, cancelled, *interrupt_types))


def decide_outcome(
    failure: BaseException | None,
    *,
    interrupt_reason: str | None = None,
    store_failure: BaseException | None = None,
    interrupt_types: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """The one verdict on a run.

    Interrupted when an interrupt was requested (``interrupt_reason``) or ``failure``
    is an interrupt (:func:`is_interrupt`); failed when ``failure`` is any other error,
    or when the run itself succeeded but the store could not keep its shots
    (``store_failure``); finished otherwise.
    """
    if interrupt_reason is not None or is_interrupt(failure, interrupt_types):
        reason = interrupt_reason or type(failure).__name__
        return Outcome(SequenceState.INTERRUPTED, {"type": "Interrupted", "message": f"interrupted: {reason}"})
    if failure is not None:
        return Outcome(SequenceState.FAILED, error_record(failure))
    if store_failure is not None:
        return Outcome(
            SequenceState.FAILED,
            {"type": type(store_failure).__name__, "message": f"results store writer failed: {store_failure}"},
        )
    return Outcome(SequenceState.FINISHED)
