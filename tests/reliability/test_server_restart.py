"""A long-running ``prefect server start`` restarted while a run holds devices.

The server keeps its concurrency leases in memory (Prefect's default): after a restart it has
forgotten them, while the database still counts the killed run's slots as taken. The next
plain ``shotflow resume STORE`` must take the devices over at once (their holder's process is
gone) and complete the store, without anything repaired by hand.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from _rlab import lab_dict
from _sigkill import kill_group, shotflow

from tasks.store import StoreError, open_sequence, store_state

STARTUP_TIMEOUT = 180.0
SHOTS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """``prefect server start`` on 127.0.0.1, in a process group of its own."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env | {"PREFECT_SERVER_UI_ENABLED": "false"},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "prefect server did not start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/api/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    env |= {
        "PREFECT_HOME": str(tmp_path / "home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    running = _Server(env, port, tmp_path / "server.log")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _completed(store: Path) -> int:
    """Shots completed in the store so far (0 while its writer has not created the shot arrays yet)."""
    try:
        return int((open_sequence(store)["status"] == 1).sum())
    except StoreError:  # no store yet, or its group exists and its arrays are being created
        return 0


def test_resume_after_a_server_restart_takes_the_devices_over(tmp_path: Path, server: _Server) -> None:
    release = tmp_path / "release"
    spec = tmp_path / "spec.yaml"
    lab = lab_dict(
        shots=SHOTS,
        devices=("camera", "rf"),
        name="restart",
        faults={"camera": {"hold_shot": 3, "hold_until": str(release)}},
        execution={"shot_timeout": "10 min"},
    )
    spec.write_text(yaml.safe_dump(lab))
    store = tmp_path / "s.zarr"
    log = tmp_path / "shotflow.log"
    run = shotflow(["run", str(spec), "--store", str(store)], server.env, log)
    try:
        deadline = time.monotonic() + 180
        while _completed(store) < 3:
            assert run.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
    finally:
        kill_group(run)  # held at shot 3: the run holds its devices when it dies
    server.stop()
    server.start()  # a new server process: the leases it kept in memory are gone
    release.touch()
    offset = log.stat().st_size
    resume = shotflow(["resume", str(store)], server.env, log)
    assert resume.wait(timeout=300) == 0, log.read_text()[-3000:]
    text = log.read_text()[offset:]
    assert "waiting for devices" not in text, text
    assert "is gone: it is taken over" in text, text
    assert store_state(store)["state"] == "finished"
    assert list(open_sequence(store)["shot"].values) == list(range(SHOTS))
