"""The sequence lifecycle as data: every legal path, illegal moves, hooks (pure: no Prefect, no store)."""

from __future__ import annotations

import logging
from itertools import product

import pytest

from tasks.records import FINAL_STATES, TRANSITIONS, IllegalTransition, Lifecycle, SequenceState

S = SequenceState

STORED_VALUES = {"running", "finished", "failed", "interrupted", "crashed"}


def _paths(state: SequenceState) -> list[list[SequenceState]]:
    """Every path through the table from ``state`` to a final state."""
    if not TRANSITIONS[state]:
        return [[state]]
    return [[state, *rest] for new in sorted(TRANSITIONS[state]) for rest in _paths(new)]


def test_the_values_the_store_already_holds_are_unchanged() -> None:
    assert STORED_VALUES <= {str(s) for s in SequenceState}
    assert S.RUNNING == "running" and S.FINISHED == "finished" and S.CRASHED == "crashed"


def test_the_table_covers_every_state_and_final_states_are_dead_ends() -> None:
    assert set(TRANSITIONS) == set(SequenceState)
    for state in SequenceState:
        assert (not TRANSITIONS[state]) == (state in FINAL_STATES), state
    assert not any(S.CRASHED in targets for targets in TRANSITIONS.values()), "only a reader says crashed"
    assert not any(S.CREATED in targets for targets in TRANSITIONS.values())


def test_every_legal_path_from_created_reaches_a_final_state() -> None:
    paths = _paths(S.CREATED)
    assert [S.CREATED, S.INITIALIZING, S.RUNNING, S.FINISHED] in paths
    assert [S.CREATED, S.INITIALIZING, S.RUNNING, S.STOPPING, S.FAILED] in paths
    assert [S.CREATED, S.INTERRUPTED] in paths  # interrupted while waiting for the devices
    for path in paths:
        lifecycle = Lifecycle("scan")
        for state in path[1:]:
            lifecycle.move(state)
        assert lifecycle.history == path and lifecycle.final


@pytest.mark.parametrize(
    ("old", "new"), [(o, n) for o, n in product(SequenceState, repeat=2) if n not in TRANSITIONS[o]]
)
def test_an_illegal_move_raises_and_changes_nothing(old: SequenceState, new: SequenceState) -> None:
    lifecycle = Lifecycle("scan")
    path = next((p for p in _paths(S.CREATED) if old in p), None)
    if path is None:  # crashed: no run reaches it
        assert old == S.CRASHED
        return
    for state in path[1 : path.index(old) + 1]:
        lifecycle.move(state)
    seen: list[tuple[SequenceState, SequenceState]] = []
    lifecycle.add_hook(lambda o, n: seen.append((o, n)))
    with pytest.raises(IllegalTransition, match=f"cannot go from {old} to {new}") as info:
        lifecycle.move(new)
    assert (info.value.old, info.value.new) == (old, new)
    assert lifecycle.state == old and lifecycle.history[-1] == old and not seen


def test_every_transition_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.lifecycle")
    lifecycle = Lifecycle("scan", log)
    with caplog.at_level(logging.INFO, logger="test.lifecycle"):
        lifecycle.move(S.INITIALIZING)
        lifecycle.move(S.RUNNING)
    assert [r.getMessage() for r in caplog.records] == [
        "sequence scan: created -> initializing",
        "sequence scan: initializing -> running",
    ]


def test_hooks_are_called_in_order_after_each_transition() -> None:
    lifecycle = Lifecycle("scan")
    calls: list[tuple[str, SequenceState, SequenceState, SequenceState]] = []
    lifecycle.add_hook(lambda o, n: calls.append(("first", o, n, lifecycle.state)))
    lifecycle.add_hook(lambda o, n: calls.append(("second", o, n, lifecycle.state)))
    lifecycle.move(S.INITIALIZING)
    lifecycle.move(S.FAILED)
    assert calls == [
        ("first", S.CREATED, S.INITIALIZING, S.INITIALIZING),
        ("second", S.CREATED, S.INITIALIZING, S.INITIALIZING),
        ("first", S.INITIALIZING, S.FAILED, S.FAILED),
        ("second", S.INITIALIZING, S.FAILED, S.FAILED),
    ]


def test_a_failing_hook_is_logged_and_isolated(caplog: pytest.LogCaptureFixture) -> None:
    lifecycle = Lifecycle("scan", logging.getLogger("test.lifecycle"))
    after: list[SequenceState] = []

    def broken(old: SequenceState, new: SequenceState) -> None:
        raise OSError("the progress display is gone")

    lifecycle.add_hook(broken)
    lifecycle.add_hook(lambda o, n: after.append(n))
    with caplog.at_level(logging.INFO, logger="test.lifecycle"):
        lifecycle.move(S.INITIALIZING)
        lifecycle.move(S.RUNNING)
    assert after == [S.INITIALIZING, S.RUNNING], "a failing hook skipped the next one"
    assert lifecycle.state == S.RUNNING
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 2 and "hook failed on created -> initializing" in failures[0].getMessage()
    assert failures[0].exc_info is not None and "the progress display is gone" in str(failures[0].exc_info[1])
