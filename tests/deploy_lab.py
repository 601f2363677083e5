"""A real Prefect server (auth on), prefect.yaml deployed, a worker: subprocesses for tests/integration and tests/ui."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).parents[1]
AUTH = "shotflow:integration-secret"
STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Lab:
    """The running server: its URL, the project folder deployed from, and the subprocess environment."""

    api_url: str
    project: Path
    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ui_url(self) -> str:
        """The Prefect UI's address (served only by a lab started with ``ui=True``)."""
        return self.api_url.removesuffix("/api")

    @property
    def results(self) -> Path:
        """SHOTFLOW_RESULTS_ROOT of deployment runs (prefect.yaml: ``results`` in the project folder)."""
        return self.project / "results"

    def settings(self) -> contextlib.AbstractContextManager[object]:
        """Client settings pointing at this server, with the auth string."""
        from prefect.settings import (
            PREFECT_API_AUTH_STRING,
            PREFECT_API_URL,
            temporary_settings,
        )

        return temporary_settings({PREFECT_API_URL: self.api_url, PREFECT_API_AUTH_STRING: AUTH})

    def prefect(self, *args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run a ``prefect`` CLI command against this server; raises with its output when it fails."""
        done = subprocess.run(
            [sys.executable, "-m", "prefect", *args],
            cwd=cwd or self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", *args],
            cwd=self.project,
            env=env or self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its flow-run subprocesses can be stopped as one group
        )
        log.close()
        self.processes.append(process)
        return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and its process group: SIGTERM, then SIGINT, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # leftovers of the group (flow runs)
        os.killpg(process.pid, signal.SIGKILL)


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"prefect server exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"prefect server not healthy after {STARTUP_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def start_lab(*, ui: bool = False) -> Lab:
    """Server (auth on) + work pool + ``prefect deploy --all`` + worker; call :func:`stop_lab` in every case.

    ``ui=True`` serves the Prefect UI too (at the server's root URL), for the browser tests of tests/ui.
    """
    root = Path(tempfile.mkdtemp(prefix="shotflow-integration-"))
    project = root / "project"
    project.mkdir()
    shutil.copy(REPO / "prefect.yaml", project / "prefect.yaml")
    shutil.copytree(REPO / "examples", project / "examples")
    (root / "logs").mkdir()
    (project / "results").mkdir()  # SHOTFLOW_RESULTS_ROOT: the sims' journals live inside it too
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SHOTFLOW_"))}
    env.update(
        PREFECT_HOME=str(root / "home"),
        PREFECT_API_URL=api_url,
        PREFECT_API_AUTH_STRING=AUTH,
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_CLI_PROMPT="false",
        PREFECT_LOGGING_LEVEL="INFO",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="5",
    )
    lab = Lab(api_url=api_url, project=project, env=env, logs=root / "logs")
    try:
        server_env = dict(
            env,
            PREFECT_SERVER_API_AUTH_STRING=AUTH,
            PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
            PREFECT_SERVER_UI_ENABLED=str(ui).lower(),
        )
        server = lab.start(
            "server",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env=server_env,
        )
        _wait_healthy(api_url, server, lab.logs / "server.log")
        lab.prefect("work-pool", "create", "shotflow-pool", "--type", "process")
        lab.prefect("--no-prompt", "deploy", "--all")
        lab.start("worker", "worker", "start", "--pool", "shotflow-pool")
    except BaseException:
        stop_lab(lab)
        raise
    return lab


def stop_lab(lab: Lab) -> None:
    """Stop the worker, then the server (and their process groups); remove the temporary folder."""
    for process in reversed(lab.processes):
        _stop(process)
    shutil.rmtree(lab.project.parent, ignore_errors=True)
