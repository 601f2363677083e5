"""The store's lifecycle attributes: the current ``state``, its ``history``, and which states are in progress.

``state`` is the run's phase as last recorded; ``history`` lists every state the store was put
in, oldest first, as ``{"state": ..., "time": ISO-8601 UTC}``; its last entry is ``state``.
A store whose state is not final (finished, failed, interrupted) is in progress: a live writer
holds it, or its writer died (readers then report ``crashed``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tasks.records import SequenceState

__all__ = ["FINAL_STATES", "history_entry", "in_progress", "now_iso", "recordable_state"]

FINAL_STATES = frozenset({str(SequenceState.FINISHED), str(SequenceState.FAILED), str(SequenceState.INTERRUPTED)})
"""States only :meth:`ShotStoreWriter.finish` records; every other state is in progress."""
_IN_PROGRESS_STATES = frozenset(str(s) for s in SequenceState) - FINAL_STATES - {str(SequenceState.CRASHED)}


def now_iso() -> str:
    """The current UTC time, ISO-8601 with milliseconds (the store's timestamps)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def in_progress(state: object) -> bool:
    """Whether a store whose ``state`` attribute is ``state`` is still being written (or its writer died).

    Every state but the final ones and ``crashed`` (a reader's verdict, never stored) is in progress,
    including states this version does not know.
    """
    return str(state) not in FINAL_STATES and str(state) != SequenceState.CRASHED


def recordable_state(state: SequenceState | str) -> str:
    """``state`` as stored by ``record_state``: a non-final lifecycle phase (``initializing``, ``running``, ...).

    Raises ValueError for a final state (recorded by ``finish()``), ``crashed`` or an unknown name.
    """
    value = str(state)
    if value in FINAL_STATES:
        raise ValueError(f"{value!r} is a final state: record it with finish(state, error)")
    if value not in _IN_PROGRESS_STATES:
        raise ValueError(f"{value!r} is not a sequence state; expected one of {', '.join(sorted(_IN_PROGRESS_STATES))}")
    return value


def history_entry(state: str, time: str | None = None) -> dict[str, Any]:
    """One ``history`` item: ``{"state": state, "time": time}`` (now when ``time`` is None)."""
    return {"state": str(state), "time": time if time is not None else now_iso()}
