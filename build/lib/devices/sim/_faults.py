"""Fault-injection settings shared by the simulated instruments, and their journal."""

from __future__ import annotations

import json
import os
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RESULTS_ROOT_ENV", "JournalEvent", "SimFaults", "check_journal", "write_journal"]

RESULTS_ROOT_ENV = "SHOTFLOW_RESULTS_ROOT"
"""When this variable is set (deployments, API runs), a journal must resolve inside that folder.
The same name as ``flows.run.RESULTS_ROOT_ENV``: ``devices`` cannot import ``flows``."""

JournalEvent = Literal["enter", "exit", "run_start", "run_end", "run_cancelled", "run_failed", "compile", "held"]


class SimFaults(BaseModel):
    """Failures a simulated instrument injects on purpose, to exercise the engine's error paths.

    Shot numbers are shot indices. All defaults mean "no fault".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_on_enter: bool = False
    """``__enter__`` raises :class:`DeviceError` (after ``enter_delay``)."""
    fail_on_exit: bool = False
    """``__exit__`` raises :class:`DeviceError` (after recording the exit)."""
    enter_delay: float = Field(0.0, ge=0)
    """Seconds ``__enter__`` blocks (``time.sleep``: a slow connection)."""
    fail_compile_shot: int | None = None
    """``compile_shot_parameters`` raises :class:`ShotCompilationError` for this shot."""
    fail_run_shot: int | None = None
    """``run_shot`` fails for this shot, before reaching the barrier, as ``run_fault`` says."""
    run_fault: Literal["raise", "hang", "timeout"] = "raise"
    """``raise``: :class:`DeviceError`; ``hang``: wait until cancelled; ``timeout``: :class:`DeviceTimeoutError`."""
    fail_run_attempts: int = Field(1_000_000, ge=0)
    """Only the first N attempts of ``fail_run_shot`` fail, so a retry can succeed."""
    block_loop_shot: int | None = None
    """During this shot, block the event loop with ``time.sleep`` (tests the blocked-loop detector)."""
    block_loop_seconds: float = Field(0.5, ge=0)
    hold_shot: int | None = None
    """``run_shot`` of this shot waits, before the barrier, until the file ``hold_until`` exists
    (cancellable): a test holds the sequence at a known shot and releases it by creating the file."""
    hold_until: str | None = None
    journal: str | None = None
    """Path of a JSON-lines file receiving lifecycle events (for tests in other processes)."""


def check_journal(path: str | None) -> None:
    """Raise ValueError if the journal ``path`` resolves (symbolic links followed) outside the
    folder named by ``$SHOTFLOW_RESULTS_ROOT``; any path is accepted when it is not set."""
    root = os.environ.get(RESULTS_ROOT_ENV)
    if path is None or not root:
        return
    resolved, inside = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([resolved, inside]) != inside:
        raise ValueError(f"faults.journal {path!r} resolves to {resolved}, outside the results folder {inside}")


_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)


def write_journal(path: str | None, device: str, event: JournalEvent, shot: int | None = None) -> None:
    """Append one event line to the journal at ``path`` (no-op when ``path`` is None).

    The file is opened in append mode for each line (a tiny synchronous write),
    so several processes can share it. The path is checked again (:func:`check_journal`)
    and opened without following a final symbolic link, so a link swapped in since the
    device was built cannot redirect the write. Raises ValueError or OSError then.
    """
    if path is None:
        return
    check_journal(path)
    line = json.dumps({"device": device, "event": event, "shot": shot, "pid": os.getpid(), "time": time.time()})
    fd = os.open(path, _APPEND, 0o644)
    with open(fd, "a", encoding="utf-8") as f:
        f.write(line + "\n")
