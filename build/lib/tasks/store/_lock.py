"""The single-writer lock of a results store, and whether its writer process is still alive.

The lock is a kernel lock (``flock`` on POSIX, ``LockFileEx`` on Windows, through
``filelock``) on ``status/.writer.lock``, so the operating system releases it when its
process dies, however it dies. The lock file itself is not readable by others on Windows
while locked, so the holder describes itself in ``status/.writer.holder`` (JSON: pid, host,
process create time), written once the lock is taken and removed just before it is
released. Both live inside an array folder, where zarr never looks for group members.

A killed writer leaves its holder file behind; readers compare its pid *and* its process
create time (``psutil``) with the live process, so a pid reused by another program is not
taken for the writer.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
from filelock import BaseFileLock, Timeout, UnixFileLock, WindowsFileLock

from ._errors import StoreBusyError, StoreError
from ._layout import HOLDER_FILE, LOCK_FILE, PARTIAL_SUFFIX

__all__ = [
    "WriterIdentity",
    "WriterLock",
    "acquire_writer_lock",
    "is_unborn_store",
    "read_holder",
    "writer_lock_is_free",
]

logger = logging.getLogger(__name__)

CREATE_TIME_TOLERANCE_S = 2.0
"""Two create times of one process, read by two processes, differ by less than this (clock
adjustments shift psutil's boot-time base by a fraction of a second); a reused pid belongs to a
process started later than that."""

# A kernel lock on every platform: filelock's FileLock would fall back to a soft lock (a marker
# file that outlives a killed process) where flock is missing; these refuse instead.
_KernelLock: type[BaseFileLock] = WindowsFileLock if sys.platform == "win32" else UnixFileLock


@dataclass(frozen=True)
class WriterIdentity:
    """A writer process: ``pid`` on ``host``, started at ``create_time`` (unix seconds)."""

    pid: int
    host: str
    create_time: float | None = None

    @classmethod
    def current(cls) -> WriterIdentity:
        """The identity of the current process."""
        return cls(os.getpid(), socket.gethostname(), psutil.Process().create_time())

    def describe(self) -> str:
        """``"pid N on host H"``."""
        return f"pid {self.pid} on host {self.host}"

    def is_alive(self) -> bool | None:
        """Whether this process still runs; None when it runs on another host (cannot tell).

        A zombie, a pid that no longer exists, or a pid now held by a process started at
        another time (pid reuse) is dead. A process that cannot be inspected counts as alive.
        """
        if self.host != socket.gethostname():
            return None
        if not psutil.pid_exists(self.pid):
            return False
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            started = process.create_time()
        except psutil.NoSuchProcess:  # also a zombie on platforms that report it so
            return False
        except psutil.AccessDenied:
            return True
        return self.create_time is None or abs(started - self.create_time) <= CREATE_TIME_TOLERANCE_S


def _lock(path: Path) -> BaseFileLock:
    # thread_local=False: the writer takes the lock in a worker thread and releases it in the
    # event loop's thread. preserve_lock_file: the file stays on release on every platform.
    return _KernelLock(
        path.joinpath(*LOCK_FILE),
        timeout=0,
        thread_local=False,
        fallback_to_soft=False,
        preserve_lock_file=True,
    )


class WriterLock:
    """The held writer lock of one store. Create it with :func:`acquire_writer_lock`."""

    def __init__(self, path: Path, lock: BaseFileLock, holder: WriterIdentity) -> None:
        self.path = path
        self.holder = holder
        """The current process, as recorded in the holder file."""
        self._lock = lock

    def release(self) -> None:
        """Remove the holder file, then release the lock (another writer may take it at once)."""
        try:
            _file(self.path, HOLDER_FILE).unlink(missing_ok=True)
        finally:
            self._lock.release()


def _file(store: Path, parts: tuple[str, str]) -> Path:
    """The lock file or holder file (``LOCK_FILE``, ``HOLDER_FILE``) of ``store``."""
    return Path(store).joinpath(*parts)


def acquire_writer_lock(path: Path) -> WriterLock:
    """Take the store's exclusive writer lock and record this process as its holder.

    Raises StoreBusyError naming the holder ("pid N on host H") if another writer holds it,
    StoreError if the lock cannot be taken at all (e.g. a network share without file locks).
    """
    _file(path, LOCK_FILE).parent.mkdir(parents=True, exist_ok=True)
    lock = _lock(path)
    try:
        lock.acquire()
    except Timeout:  # before OSError: filelock's Timeout is a TimeoutError
        holder = read_holder(path)
        named = holder.describe() if holder and holder.is_alive() is not False else "another process"
        raise StoreBusyError(
            f"store {path} is already open for writing by {named}; a store has exactly one "
            "writer (wait for that run to end, or write to another --store path)"
        ) from None
    except OSError as exc:
        raise StoreError(
            f"cannot lock store {path} for writing ({exc}); its folder must be writable and on a "
            "filesystem with file locks (some network shares have none): use a local disk"
        ) from exc
    holder = WriterIdentity.current()
    try:
        _write_holder(path, holder)
    except BaseException:
        lock.release()
        raise
    return WriterLock(path, lock, holder)


def _write_holder(path: Path, identity: WriterIdentity) -> None:
    holder = _file(path, HOLDER_FILE)
    partial = holder.with_name(f"{holder.name}.{identity.pid}{PARTIAL_SUFFIX}")
    partial.write_text(json.dumps(asdict(identity)))
    os.replace(partial, holder)  # readers see the old holder or the new one, never half


def read_holder(path: Path) -> WriterIdentity | None:
    """The process that holds (or, if it died, last held) the store's writer lock; None if
    no writer recorded itself (never written, cleanly released, or unreadable)."""
    try:
        fields = json.loads(_file(path, HOLDER_FILE).read_text())
        return WriterIdentity(int(fields["pid"]), str(fields["host"]), fields.get("create_time"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def writer_lock_is_free(path: Path) -> bool:
    """True when no process holds the store's writer lock (checked by taking it briefly).

    A lock this process cannot take (a read-only store, a filesystem without locks) counts
    as held: the caller then relies on the holder's liveness.
    """
    if not _file(path, LOCK_FILE).exists():
        return True
    lock = _lock(Path(path))
    try:
        lock.acquire()
    except Timeout:  # before OSError: filelock's Timeout is a TimeoutError
        return False
    except OSError as exc:
        logger.debug("cannot probe the writer lock of %s: %s", path, exc)
        return False
    lock.release()
    return True


def is_unborn_store(path: Path) -> bool:
    """True for a folder left by a writer killed before it wrote any metadata.

    Such a folder holds nothing but the writer lock's files and zarr's temporary files,
    so a new store may be created in it; anything else makes it not unborn.
    """
    own = {_file(path, LOCK_FILE), _file(path, HOLDER_FILE)}
    for entry in Path(path).rglob("*"):
        if entry.is_file() and entry not in own and not entry.name.endswith(PARTIAL_SUFFIX):
            return False
    return True
