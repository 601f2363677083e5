"""The local Prefect server that shotflow manages when no ``PREFECT_API_URL`` is configured.

The first ``shotflow run`` on a laptop starts one server per ``PREFECT_HOME``, listening on
127.0.0.1 only, and later runs reuse it (no start-up cost). The server runs detached in its
own session (its own process group on Windows): a Ctrl-C in the terminal, which signals the
whole foreground process group, never reaches it, and a killed run never takes it down. It
stops by itself after :data:`IDLE_SECONDS` without a request; ``shotflow server status`` and
``shotflow server stop`` control it.

Its state (pid, process start time, port) is in ``<PREFECT_HOME>/shotflow-server.json``;
starting is serialised by a file lock beside it, so two runs started together share one
server. The state is written as soon as the server process exists (marked not ready until it
answers): a run killed while the server starts leaves it to the next run, which adopts it
rather than starting a second server on the same database. A server whose process is gone, or
that no longer answers, is replaced.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from filelock import FileLock, Timeout

from flows._errors import LocalServerError

__all__ = [
    "IDLE_SECONDS",
    "ServerInfo",
    "await_server",
    "ensure_server",
    "prefect_home",
    "running_server",
    "stop_server",
]

logger = logging.getLogger(__name__)

STATE_FILE = "shotflow-server.json"
LOCK_FILE = "shotflow-server.lock"
LOG_FILE = "shotflow-server.log"
IDLE_ENV = "SHOTFLOW_SERVER_IDLE"
IDLE_SECONDS = 3600.0
"""Default idle time (no request) after which the server stops; ``SHOTFLOW_SERVER_IDLE`` overrides it."""
STARTUP_TIMEOUT = 180.0
"""Seconds a server may take to answer after it is started (a fresh database is migrated first)."""
HEALTH_TIMEOUT = 5.0
"""Seconds one health request may take."""
UNRESPONSIVE_SECONDS = 20.0
"""A server process that has not answered for this long is wedged and is replaced."""
STOP_TIMEOUT = 20.0
"""Seconds a server is given to shut down before it is killed."""
POLL = 0.1


@dataclass(frozen=True)
class ServerInfo:
    """A managed server: its process (pid and start time), its port, and whether it has answered yet."""

    pid: int
    created: float
    port: int
    home: str
    ready: bool = True

    @property
    def api_url(self) -> str:
        """The API URL clients use (``PREFECT_API_URL``)."""
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui_url(self) -> str:
        """The Prefect UI of this server."""
        return f"http://127.0.0.1:{self.port}"


def prefect_home() -> Path:
    """The ``PREFECT_HOME`` of this process (Prefect's settings: environment, ``.env``, defaults)."""
    from prefect.settings import PREFECT_HOME

    return Path(PREFECT_HOME.value()).expanduser()


def _idle_seconds() -> float:
    raw = os.environ.get(IDLE_ENV)
    if not raw:
        return IDLE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise LocalServerError(f"{IDLE_ENV}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise LocalServerError(f"{IDLE_ENV}={raw!r}: expected a positive number of seconds")
    return value


def _read_state(home: Path) -> ServerInfo | None:
    try:
        data = json.loads((home / STATE_FILE).read_text())
        return ServerInfo(
            int(data["pid"]),
            float(data["created"]),
            int(data["port"]),
            str(data["home"]),
            bool(data.get("ready", True)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_state(home: Path, info: ServerInfo) -> None:
    temporary = home / f".{STATE_FILE}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(asdict(info)))
    os.replace(temporary, home / STATE_FILE)  # atomic: readers see the old or the new state


def _process(info: ServerInfo) -> psutil.Process | None:
    """The server's process, or None if it is gone (a reused pid is not the server).

    A zombie is gone: a server killed after its starter exited is reparented to PID 1, and in a
    container whose PID 1 does not reap, it stays a zombie (it cannot answer nor be waited for).
    """
    try:
        process = psutil.Process(info.pid)
        if abs(process.create_time() - info.created) > 1.0:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


def _exited(process: psutil.Process, timeout: float) -> bool:
    """Wait until ``process`` has exited (a zombie has); False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
            process.wait(min(POLL * 5, max(0.0, deadline - time.monotonic())))
            return True
        except psutil.NoSuchProcess:
            return True
        except psutil.TimeoutExpired:
            if time.monotonic() >= deadline:
                return False


def _healthy(info: ServerInfo) -> bool:
    try:
        response = httpx.get(f"{info.api_url}/health", timeout=HEALTH_TIMEOUT)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def running_server(home: Path | None = None) -> ServerInfo | None:
    """The managed server of ``home`` (default: this process's ``PREFECT_HOME``) if it answers."""
    home = home or prefect_home()
    info = _read_state(home)
    if info is None or _process(info) is None or not _healthy(info):
        return None
    return info


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _detached() -> dict[str, Any]:
    """Popen options that put the server outside the terminal's process group."""
    if sys.platform == "win32":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS  # type: ignore[attr-defined]
        return {"creationflags": flags}
    return {"start_new_session": True}


def _terminate(process: psutil.Process) -> None:
    """Stop ``process``: SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`."""
    try:
        process.terminate()
        if _exited(process, STOP_TIMEOUT):
            return
        process.kill()
    except psutil.NoSuchProcess:
        return
    if not _exited(process, STOP_TIMEOUT):
        raise LocalServerError(f"the local Prefect server (pid {process.pid}) survived SIGKILL")


def _log_tail(home: Path, lines: int = 20) -> str:
    try:
        return "\n".join((home / LOG_FILE).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _start(home: Path, idle: float, *, wait: bool = True) -> ServerInfo:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(home)
    # the devices' leases outlive a restart of this server (they are kept in files, not in memory)
    env.setdefault("PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE", "prefect.server.concurrency.lease_storage.filesystem")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    command = [sys.executable, "-m", "flows.cli._server_main", "--port", str(port), "--idle", str(idle)]
    with open(home / LOG_FILE, "ab") as log:
        popen = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **_detached()
        )
    try:
        created = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        created = time.time()
    info = ServerInfo(popen.pid, created, port, str(home), ready=False)
    # recorded before it answers: if this process is killed now, the next one adopts this
    # server instead of starting a second one on the same database
    _write_state(home, info)
    if not wait:
        return info
    ready = _await_start(info)
    logger.info("started the local Prefect server (pid %d) at %s", info.pid, info.ui_url)
    return ready


def _await_start(info: ServerInfo) -> ServerInfo:
    """Wait for a starting server to answer (until :data:`STARTUP_TIMEOUT` after its start); record it ready."""
    home = Path(info.home)
    deadline = time.monotonic() + max(0.0, STARTUP_TIMEOUT - max(0.0, time.time() - info.created))
    while not _healthy(info):
        process = _process(info)
        if process is None:
            raise LocalServerError(
                f"the local Prefect server exited at start; its log ({home / LOG_FILE}) ends with:\n{_log_tail(home)}"
            )
        if time.monotonic() > deadline:
            _terminate(process)
            raise LocalServerError(
                f"the local Prefect server did not answer within {STARTUP_TIMEOUT:.0f} s; "
                f"its log ({home / LOG_FILE}) ends with:\n{_log_tail(home)}"
            )
        time.sleep(POLL)
    ready = ServerInfo(info.pid, info.created, info.port, info.home)
    _write_state(home, ready)
    return ready


def _wait_responsive(info: ServerInfo) -> bool:
    """Whether a live server answers within :data:`UNRESPONSIVE_SECONDS` (it may be busy)."""
    deadline = time.monotonic() + UNRESPONSIVE_SECONDS
    while time.monotonic() < deadline:
        if _process(info) is None:
            return False
        if _healthy(info):
            return True
        time.sleep(1.0)
    return False


def ensure_server(home: Path | None = None, *, wait: bool = True) -> tuple[ServerInfo, bool]:
    """The running managed server of ``home``, started if needed; returns ``(info, started)``.

    With ``wait=False`` a server being started is returned at once (``info.ready`` False): the
    caller does its own work meanwhile, then waits with :func:`await_server`.

    Serialised across processes by a file lock: runs started together get one server. A stale
    state (process gone, or alive but not answering for :data:`UNRESPONSIVE_SECONDS`) is
    replaced. Raises :class:`LocalServerError` (with the end of the server's log) when the
    server cannot be started.
    """
    home = home or prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    idle = _idle_seconds()
    try:
        with FileLock(home / LOCK_FILE, timeout=STARTUP_TIMEOUT + UNRESPONSIVE_SECONDS + STOP_TIMEOUT):
            info = _read_state(home)
            if info is not None:
                process = _process(info)
                if process is not None and not info.ready:  # still starting, or its starter was killed: adopt it
                    logger.info("waiting for the local Prefect server (pid %d) that another run started", info.pid)
                    if not wait:
                        return info, False
                    try:
                        return _await_start(info), False
                    except LocalServerError as exc:
                        logger.warning("%s\nstarting a new one", exc)
                        return _start(home, idle), True
                if process is not None:
                    if _wait_responsive(info):
                        return info, False
                    logger.warning("the local Prefect server (pid %d) stopped answering: replacing it", info.pid)
                    _terminate(process)
            return _start(home, idle, wait=wait), True
    except Timeout:
        raise LocalServerError(
            f"another process has been starting the local Prefect server of {home} for too long "
            f"(lock {home / LOCK_FILE})"
        ) from None


def await_server(info: ServerInfo) -> ServerInfo:
    """``info`` once its server answers (at once if it is ready); raises :class:`LocalServerError`
    with the end of its log when it exits or does not answer within :data:`STARTUP_TIMEOUT`."""
    return info if info.ready else _await_start(info)


def stop_server(home: Path | None = None) -> ServerInfo | None:
    """Stop the managed server of ``home``; returns what was stopped (None if none was running).

    Runs connected to it lose their server: their stores still record every shot and the final state.
    """
    home = home or prefect_home()
    try:
        with FileLock(home / LOCK_FILE, timeout=STARTUP_TIMEOUT):
            info = _read_state(home)
            process = _process(info) if info is not None else None
            if process is not None:
                _terminate(process)
            (home / STATE_FILE).unlink(missing_ok=True)
            return info if process is not None else None
    except Timeout:
        raise LocalServerError(f"the local Prefect server of {home} is being started; try again") from None
