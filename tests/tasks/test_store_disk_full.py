"""The disk refuses a write (issue 11, class 4c): the writer fails the run with a StoreError naming
the store and the system's reason, and records the final state when the disk still takes it.

The fault is real: the writer runs in a child process whose file-size limit (``RLIMIT_FSIZE``)
is below the size of one shot's chunk, so the kernel answers that write with EFBIG ("File too
large"), as a full disk answers ENOSPC. The group metadata stays below the limit, so the final
state can still be recorded. (No tmpfs or loop device is available without root.)"""

from __future__ import annotations

import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.store import describe_store, open_sequence, store_state

CHILD = """
import resource, signal, sys
import anyio, numpy as np
from tasks.records import ShotRecord
from tasks.store import ShotStoreWriter, StoreError

path, shots, big_at, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

def record(i):
    n = limit // 2  # float64: 4 times the limit; zeros compress to almost nothing, noise does not
    trace = np.random.default_rng(i).standard_normal(n) if i >= big_at else np.zeros(n)
    data = {"camera.trace": trace}
    return ShotRecord(index=i, parameters={"x": float(i)}, data=data, start_time=i, end_time=i)

async def main():
    async with ShotStoreWriter.open(path, spec_json="{}", expected_shots=shots, parameter_units={}) as writer:
        for i in range(shots):
            try:
                await writer.write(record(i))
            except StoreError as exc:
                print("write:", exc, flush=True)
                break

try:
    anyio.run(main)
except StoreError as exc:
    print("finish:", exc, flush=True)
    sys.exit(3)
"""


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shots=st.integers(2, 12), big_at=st.floats(0, 1), limit_kib=st.sampled_from([64, 256]))
def test_a_refused_write_fails_the_run_naming_the_store_and_the_reason(
    tmp_path_factory: object, shots: int, big_at: float, limit_kib: int
) -> None:
    path = tmp_path_factory.mktemp("efbig") / "s.zarr"  # type: ignore[attr-defined]
    first_big = min(int(big_at * shots), shots - 1)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(shots), str(first_big), str(limit_kib * 1024)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr  # finish raised: the writer failed
    assert f"store {path}" in done.stdout and "File too large (EFBIG)" in done.stdout, done.stdout
    state = store_state(path)
    assert state["state"] == "failed" and not state["writer_alive"]
    assert str(path) in state["error"]["message"] and "EFBIG" in state["error"]["message"], state["error"]
    kept = state["completed_shots"]  # the refused shot's batch is lost with it; what is marked is intact
    assert kept <= first_big and list(open_sequence(path)["shot"].values) == list(range(kept))
    assert "failed: the run stopped on an error" in describe_store(path)
