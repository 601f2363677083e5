"""The store's single-writer lock and writer liveness, with real processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from anyio import open_process
from anyio.streams.buffered import BufferedByteReceiveStream
from store_helpers import record, write_store

from tasks.store import StoreBusyError, StoreError
from tasks.store._lock import (
    CREATE_TIME_TOLERANCE_S,
    WriterIdentity,
    acquire_writer_lock,
    read_holder,
    writer_lock_is_free,
)

pytestmark = pytest.mark.anyio

# Takes the lock of argv[1], says so, then waits to be killed (it never releases the lock).
HOLD_LOCK = """
import pathlib, sys, time
from tasks.store._lock import acquire_writer_lock
lock = acquire_writer_lock(pathlib.Path(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""

# Like HOLD_LOCK, but first forks a helper (as a writer may fork a worker) that outlives it.
HOLD_LOCK_WITH_HELPER = """
import os, pathlib, sys, time
from tasks.store._lock import acquire_writer_lock
lock = acquire_writer_lock(pathlib.Path(sys.argv[1]))
helper = os.fork()
if helper == 0:
    time.sleep(600)
    os._exit(0)
print("held", helper, flush=True)
time.sleep(600)
"""


async def test_second_writer_is_refused_naming_the_holder_until_it_is_killed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "scan.zarr"
    async with await open_process([sys.executable, "-c", HOLD_LOCK, str(path)]) as holder:
        assert holder.stdout is not None
        assert (await holder.stdout.receive()).startswith(b"held")
        assert not writer_lock_is_free(path)
        with pytest.raises(StoreBusyError, match=f"pid {holder.pid} on host {socket.gethostname()}"):
            acquire_writer_lock(path)
        holder.kill()  # SIGKILL: no cleanup runs, the holder file stays
        await holder.wait()
    assert read_holder(path) is not None and read_holder(path).pid == holder.pid  # type: ignore[union-attr]
    assert writer_lock_is_free(path)  # the kernel released the killed process's lock
    lock = acquire_writer_lock(path)
    assert read_holder(path) == WriterIdentity.current()
    lock.release()
    assert read_holder(path) is None and writer_lock_is_free(path)


async def test_a_finished_writer_releases_the_lock_from_another_thread(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    await write_store(path, [record(0)], expected_shots=1)  # locked in a worker thread
    assert writer_lock_is_free(path) and read_holder(path) is None
    code = f"from tasks.store._lock import acquire_writer_lock; import pathlib; acquire_writer_lock(pathlib.Path({str(path)!r}))"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_holder_is_recorded_beside_the_lock_with_its_create_time(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    lock = acquire_writer_lock(path)
    try:
        holder = json.loads((path / "status" / ".writer.holder").read_text())
        me = psutil.Process()
        assert holder == {
            "pid": me.pid,
            "host": socket.gethostname(),
            "create_time": me.create_time(),
        }
        assert lock.holder.describe() == f"pid {me.pid} on host {socket.gethostname()}"
    finally:
        lock.release()


def test_liveness_tells_a_reused_pid_from_the_writer() -> None:
    me = WriterIdentity.current()
    assert me.is_alive() is True
    started_earlier = WriterIdentity(me.pid, me.host, me.create_time - 10 * CREATE_TIME_TOLERANCE_S)  # type: ignore[operator]
    assert started_earlier.is_alive() is False  # same pid, another process: the writer is gone
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert WriterIdentity(finished.pid, me.host).is_alive() is False
    assert WriterIdentity(me.pid, "another-host").is_alive() is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
async def test_a_forked_helper_does_not_keep_a_killed_writers_lock(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    async with await open_process([sys.executable, "-c", HOLD_LOCK_WITH_HELPER, str(path)]) as holder:
        assert holder.stdout is not None
        line = await BufferedByteReceiveStream(holder.stdout).receive_until(b"\n", 100)
        helper = psutil.Process(int(line.split()[1]))
        try:
            assert not writer_lock_is_free(path)
            holder.kill()
            await holder.wait()
            assert helper.is_running()
            assert writer_lock_is_free(path)  # the helper's copy of the descriptor is closed
        finally:
            helper.kill()
            helper.wait(timeout=10)


def test_is_unborn_store_counts_only_the_lock_files(tmp_path: Path) -> None:
    from tasks.store._lock import is_unborn_store

    path = tmp_path / "scan.zarr"
    acquire_writer_lock(path).release()
    assert is_unborn_store(path)
    (path / "status" / ".writer.holder").write_text("{}")  # what a killed writer leaves
    assert is_unborn_store(path)
    (path / "zarr.json").write_text("{}")
    assert not is_unborn_store(path)


def test_a_lock_that_cannot_be_taken_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    (path / "status" / ".writer.lock").mkdir(parents=True)  # not a file: no lock on it
    with pytest.raises(StoreError, match="cannot lock store") as info:
        acquire_writer_lock(path)
    assert not isinstance(info.value, StoreBusyError)
    assert not writer_lock_is_free(path)  # cannot tell: the holder's liveness decides
