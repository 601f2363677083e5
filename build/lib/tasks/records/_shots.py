"""The frozen values handed to the results store: one :class:`ShotRecord` per shot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

__all__ = ["SequenceState", "ShotRecord", "ShotStatus"]


class ShotStatus(IntEnum):
    """Per-shot status as stored in the ``status`` variable (uint8)."""

    PENDING = 0
    COMPLETED = 1
    FAILED = 2


class SequenceState(StrEnum):
    """Lifecycle state of a sequence run, stored in the group attribute ``state``.

    The one lifecycle of a run: its allowed moves are the table
    :data:`tasks.records.TRANSITIONS`. ``CRASHED`` is never written by a writer:
    readers report it when the store says ``running`` (or another state that is
    not final) but no writer holds it any more.
    """

    CREATED = "created"  # the spec is checked, nothing is touched yet
    INITIALIZING = "initializing"  # store opened, devices being entered
    RUNNING = "running"
    STOPPING = "stopping"  # a compile error: the running shot ends, nothing new starts
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CRASHED = "crashed"


@dataclass(frozen=True)
class ShotRecord:
    """Everything the store keeps about one shot.

    ``parameters`` are SI magnitudes (or bools); ``data`` maps ``"<device>.<label>"``
    to a numpy array or scalar; ``start_time``/``end_time`` are unix seconds.
    ``indices`` maps each enclosing loop's axis name -> the shot's position on it, in
    scan order (stored as ``index.<axis>``). ``FAILED`` records carry no data (their
    ``data`` is ignored).
    """

    index: int
    parameters: Mapping[str, float | int | bool]
    data: Mapping[str, Any]
    start_time: float
    end_time: float
    attempts: int = 1
    status: ShotStatus = ShotStatus.COMPLETED
    indices: Mapping[str, int] = field(default_factory=dict)
