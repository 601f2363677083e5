"""Session-wide test setup: a private Prefect home and one embedded Prefect server.

Environment variables are set before Prefect is imported: every test run gets
its own temporary ``PREFECT_HOME`` and reports nothing anywhere.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_HOME = tempfile.mkdtemp(prefix="shotflow-prefect-home-")
os.environ["PREFECT_HOME"] = _HOME
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
os.environ.pop("PREFECT_API_URL", None)

import pytest  # noqa: E402
from simlab import SHOTFLOW  # noqa: E402


def _children() -> set[int]:
    """PIDs of the live child processes of this process (from /proc)."""
    me = os.getpid()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) != me or fields[0] == "Z":
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.resource_tracker" in cmdline:  # one per process, lives as long as it
            continue
        found.add(int(entry.name))
    return found


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One embedded Prefect server (SQLite in a temporary folder) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def terminal() -> Iterator[dict[str, str]]:
    """The environment of a physicist's terminal, for ``shotflow`` commands run as subprocesses.

    No ``PREFECT_API_URL``: the commands use the local Prefect server that shotflow manages,
    one ``PREFECT_HOME`` shared by every command of the session. That server is stopped at the end.
    """
    home = Path(tempfile.mkdtemp(prefix="shotflow-terminal-home-"))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING"}
    try:
        yield env
    finally:
        subprocess.run([SHOTFLOW, "server", "stop"], env=env, timeout=120, check=True, capture_output=True)


@pytest.fixture(autouse=True)
def _no_leaked_processes() -> Iterator[None]:
    """Fail a test that leaves child processes running (session fixtures are set up before this)."""
    before = _children()
    yield
    deadline = time.monotonic() + 10
    leaked = _children() - before
    while leaked and time.monotonic() < deadline:
        time.sleep(0.1)
        leaked = _children() - before
    if leaked:
        pytest.fail(f"test left child processes running: {sorted(leaked)}")


@pytest.fixture(scope="session")
def deployed_lab() -> Iterator[object]:
    """One real Prefect server (auth on, UI served), prefect.yaml deployed and a process worker,
    shared by tests/integration and tests/ui (tests/deploy_lab.py): started by the first test that
    needs it, stopped at the end of the session whatever happens."""
    from deploy_lab import start_lab, stop_lab

    running = start_lab(ui=True)
    try:
        yield running
    finally:
        stop_lab(running)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pint_accessor() -> Iterator[None]:
    """pint-xarray's ``.pint`` accessor for one test, the unit registry put back as it was after.

    Importing pint-xarray turns on ``force_ndarray_like`` in pint's application registry (the
    one shotflow's expressions use): kept for the whole session, it would change every later test.
    """
    import pint

    registry = pint.get_application_registry()
    before = registry.force_ndarray_like
    import pint_xarray  # noqa: F401 - registers the accessor

    registry.force_ndarray_like = True
    try:
        yield
    finally:
        registry.force_ndarray_like = before
