"""The local Prefect server that shotflow manages, shared by runs started together and by crashes.

The physicist's default: no ``PREFECT_API_URL``, one ``PREFECT_HOME``, a fresh one here so that
no server runs yet. Two ``shotflow run`` started at the same moment must share one server; a
SIGKILL of either one's process group (a power cut of one terminal, the OOM killer) leaves the
other running and the server answering; and a run killed while it is still starting the server
leaves that server to the next command, which adopts it instead of starting a second server on
the same database. Nothing is repaired by hand between the commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from _rlab import lab_dict
from _sigkill import COMMAND_TIMEOUT, kill_group, shotflow
from simlab import SHOTFLOW

from tasks.store import open_sequence, store_state

SHOTS = 12
SERVER_MODULE = "flows.cli._server_main"


@pytest.fixture
def fresh_home() -> Iterator[dict[str, str]]:
    """A terminal's environment with a PREFECT_HOME of its own, in which no server has run yet."""
    import os

    home = Path(tempfile.mkdtemp(prefix="shotflow-fresh-home-"))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING"}
    try:
        yield env
    finally:
        subprocess.run([SHOTFLOW, "server", "stop"], env=env, timeout=120, check=True, capture_output=True)
        for process in _servers_of(home):  # a second server the state file does not know of
            process.kill()
            process.wait(30)


def _servers_of(home: Path) -> list[psutil.Process]:
    """The managed-server processes running for ``home`` (whatever the state file says)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if SERVER_MODULE not in " ".join(process.info["cmdline"] or ()):
                continue
            if process.environ().get("PREFECT_HOME") == str(home):
                found.append(process)
        except psutil.Error:
            continue
    return found


def _recorded_pid(home: Path) -> int:
    return int(json.loads((home / "shotflow-server.json").read_text())["pid"])


def _spec(folder: Path, suffix: str) -> tuple[Path, Path]:
    journal = folder / f"journal{suffix}.jsonl"
    spec = lab_dict(
        shots=SHOTS, pulse="20 ms", devices=("camera", "rf"), name=f"managed{suffix}", journal=journal, suffix=suffix
    )
    path = folder / f"spec{suffix}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, journal


def _wait_until(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    """Return once ``condition()`` holds; fail if ``proc`` ended first or nothing happened for long."""
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while not condition():
        assert proc.poll() is None, f"the run ended (code {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.01)


def _shots_ended(journal: Path) -> int:
    try:
        return journal.read_bytes().count(b'"run_end"')
    except FileNotFoundError:
        return 0


def _finish(proc: subprocess.Popen[bytes], log: Path) -> None:
    assert proc.wait(timeout=COMMAND_TIMEOUT) == 0, log.read_text(errors="replace")[-3000:]


def test_two_runs_started_together_share_one_server_and_survive_a_crash_of_either(
    tmp_path: Path, fresh_home: dict[str, str]
) -> None:
    home = Path(fresh_home["PREFECT_HOME"])
    spec_a, journal_a = _spec(tmp_path, "_a")
    spec_b, _ = _spec(tmp_path, "_b")
    store_a, store_b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    run_a = shotflow(["run", str(spec_a), "--store", str(store_a)], fresh_home, log_a)
    run_b = shotflow(["run", str(spec_b), "--store", str(store_b)], fresh_home, log_b)
    try:
        _wait_until(lambda: _shots_ended(journal_a) >= 4, run_a, "run a's second shot")
    finally:
        kill_group(run_a)  # run b goes on, on the server the two share
    _finish(run_b, log_b)
    assert store_state(store_b)["state"] == "finished"
    assert store_state(store_a)["state"] == "crashed"
    servers = _servers_of(home)
    assert [p.pid for p in servers] == [_recorded_pid(home)], "two runs started together must share one server"
    status = subprocess.run([SHOTFLOW, "server", "status"], env=fresh_home, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and f"pid {servers[0].pid}" in status.stdout, status.stdout + status.stderr

    resume = shotflow(["resume", str(store_a)], fresh_home, log_a)
    _finish(resume, log_a)
    assert open_sequence(store_a).sizes["shot"] == SHOTS and store_state(store_a)["state"] == "finished"
    assert [p.pid for p in _servers_of(home)] == [servers[0].pid], "the resume reuses the running server"


def test_a_run_killed_while_it_starts_the_server_leaves_the_server_to_the_next_run(
    tmp_path: Path, fresh_home: dict[str, str]
) -> None:
    home = Path(fresh_home["PREFECT_HOME"])
    spec, _ = _spec(tmp_path, "_c")
    store, log = tmp_path / "c.zarr", tmp_path / "c.log"
    first = shotflow(["run", str(spec), "--store", str(store)], fresh_home, log)
    try:
        _wait_until(lambda: bool(_servers_of(home)), first, "the server process")
        starting = _servers_of(home)
        # the kill lands while the server is still starting (its database is being created)
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{_port_of(starting[0])}/api/health", timeout=0.5).raise_for_status()
    finally:
        kill_group(first)

    second = shotflow(["run", str(spec), "--store", str(tmp_path / "c2.zarr")], fresh_home, log)
    _finish(second, log)
    assert store_state(tmp_path / "c2.zarr")["state"] == "finished"
    assert [p.pid for p in _servers_of(home)] == [starting[0].pid], (
        "the next run adopts the server being started, never a second server on the same database"
    )


def _port_of(process: psutil.Process) -> int:
    command = process.cmdline()
    return int(command[command.index("--port") + 1])


@pytest.mark.skipif(sys.platform == "win32", reason="zombies are a POSIX state")
def test_a_killed_server_left_unreaped_counts_as_gone(tmp_path: Path) -> None:
    """In a container whose PID 1 does not reap, a killed server stays a zombie: it is gone, not wedged.

    CI met it: the next run waited for the zombie to answer, then to exit, and failed.
    """
    from flows.cli._local_server import running_server, stop_server

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        created = psutil.Process(child.pid).create_time()
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped: a zombie
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
        state = {"pid": child.pid, "created": created, "port": 9, "home": str(tmp_path), "ready": True}
        (tmp_path / "shotflow-server.json").write_text(json.dumps(state))
        assert running_server(tmp_path) is None
        assert stop_server(tmp_path) is None
        assert not (tmp_path / "shotflow-server.json").exists()
    finally:
        child.wait()
