"""The sequence lifecycle: :class:`SequenceState` and its allowed transitions, written as data."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ._shots import SequenceState

__all__ = ["FINAL_STATES", "TRANSITIONS", "IllegalTransition", "Lifecycle", "LifecycleHook"]

logger = logging.getLogger(__name__)

_S = SequenceState

TRANSITIONS: Mapping[SequenceState, frozenset[SequenceState]] = {
    _S.CREATED: frozenset({_S.INITIALIZING, _S.FAILED, _S.INTERRUPTED}),
    _S.INITIALIZING: frozenset({_S.RUNNING, _S.FAILED, _S.INTERRUPTED}),
    _S.RUNNING: frozenset({_S.STOPPING, _S.FINISHED, _S.FAILED, _S.INTERRUPTED}),
    _S.STOPPING: frozenset({_S.FAILED, _S.INTERRUPTED}),
    _S.FINISHED: frozenset(),
    _S.FAILED: frozenset(),
    _S.INTERRUPTED: frozenset(),
    _S.CRASHED: frozenset(),  # a reader's verdict on a store whose writer died; no run moves into it
}
"""The states each state may move to; a move that is not listed raises :class:`IllegalTransition`."""

FINAL_STATES = frozenset({_S.FINISHED, _S.FAILED, _S.INTERRUPTED, _S.CRASHED})
"""The states a run ends in (nothing moves out of them)."""

LifecycleHook = Callable[[SequenceState, SequenceState], object]
"""Called as ``hook(old, new)`` after every transition."""


class IllegalTransition(RuntimeError):
    """A move that :data:`TRANSITIONS` does not allow (a bug in the engine)."""

    def __init__(self, name: str, old: SequenceState, new: SequenceState) -> None:
        super().__init__(f"sequence {name!r}: cannot go from {old} to {new}")
        self.name = name
        self.old = old
        self.new = new


class Lifecycle:
    """The state of one run, from ``created``; every transition is checked, logged and told to the hooks.

    ``log`` receives one line per transition (the flow passes its run logger).
    Hooks are called in the order they were added, after the state changed; a hook
    that raises is logged and neither undoes the move nor skips the other hooks.
    """

    def __init__(self, name: str, log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger) -> None:
        self.name = name
        self.state = SequenceState.CREATED
        self.history: list[SequenceState] = [SequenceState.CREATED]
        self._log = log
        self._hooks: list[LifecycleHook] = []

    def add_hook(self, hook: LifecycleHook) -> None:
        """Call ``hook(old, new)`` after every later transition."""
        self._hooks.append(hook)

    def move(self, new: SequenceState) -> None:
        """Go to ``new``, then call the hooks; raises :class:`IllegalTransition` (state unchanged) if not allowed."""
        old = self.state
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(self.name, old, new)
        self._log.info("sequence %s: %s -> %s", self.name, old, new)
        self.state = new
        self.history.append(new)
        for hook in list(self._hooks):
            try:
                hook(old, new)
            except Exception:  # noqa: BLE001 - a hook (progress, store record) never stops the run
                self._log.exception("sequence %s: a lifecycle hook failed on %s -> %s", self.name, old, new)

    @property
    def final(self) -> bool:
        """Whether the run has ended."""
        return self.state in FINAL_STATES
