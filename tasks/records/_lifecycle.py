"""The sequence lifecycle: states and their allowed transitions, written as data."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

__all__ = ["IllegalTransition", "Lifecycle", "Phase"]

logger = logging.getLogger(__name__)


class Phase(enum.StrEnum):
    """Where a sequence run is."""

    CREATED = "created"
    INITIALIZING = "initializing"  # compilers built, store opened, devices being entered
    RUNNING = "running"
    STOPPING = "stopping"  # a compile error or an interrupt: the running shot ends, nothing new starts
    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.CREATED: frozenset({Phase.INITIALIZING, Phase.FAILED, Phase.INTERRUPTED}),
    Phase.INITIALIZING: frozenset({Phase.RUNNING, Phase.FAILED, Phase.INTERRUPTED}),
    Phase.RUNNING: frozenset({Phase.STOPPING, Phase.FINISHED, Phase.FAILED, Phase.INTERRUPTED}),
    Phase.STOPPING: frozenset({Phase.FAILED, Phase.INTERRUPTED}),
    Phase.FINISHED: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.INTERRUPTED: frozenset(),
}

FINAL_PHASES = frozenset({Phase.FINISHED, Phase.FAILED, Phase.INTERRUPTED})


class IllegalTransition(RuntimeError):
    """A move that the lifecycle table does not allow (a bug in the engine)."""


class Lifecycle:
    """The current phase of one run; every transition is checked and logged."""

    def __init__(
        self,
        name: str,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger,
        on_move: Callable[[Phase], None] | None = None,
    ) -> None:
        self.name = name
        self.phase = Phase.CREATED
        self.history: list[Phase] = [Phase.CREATED]
        self._log = log
        self._on_move = on_move

    def move(self, phase: Phase) -> None:
        """Go to ``phase``; raises :class:`IllegalTransition` if the table forbids it."""
        if phase not in _TRANSITIONS[self.phase]:
            raise IllegalTransition(f"sequence {self.name!r}: cannot go from {self.phase} to {phase}")
        self._log.info("sequence %s: %s -> %s", self.name, self.phase, phase)
        self.phase = phase
        self.history.append(phase)
        if self._on_move is not None:
            self._on_move(phase)

    @property
    def final(self) -> bool:
        """Whether the run has ended."""
        return self.phase in FINAL_PHASES
