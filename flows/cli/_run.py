"""The CLI commands that run sequences, ``run`` and ``resume``, with their live progress bar.

Imported only when one of them runs (see :mod:`flows.cli._main`). It imports Prefect's settings
first, starts the local server if one is needed, and only then the run (Prefect, the store: 2-3
s), so that those imports overlap the server's start.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from flows.sequence import SequenceSpec, apply_overrides, load_spec

from ._main import EXIT_FAILED, EXIT_INTERRUPTED, overrides_of

if TYPE_CHECKING:  # flows.run and the store are imported once the local server is starting (see _run)
    from flows.run import Progress as RunProgress
    from flows.run import SequenceResult

__all__ = ["resume_command", "run_command"]

logger = logging.getLogger(__name__)

SERVER_LOST_SECONDS = 5.0
"""Once the store holds the run's final state, a Prefect server that has not answered for this
long is gone (e.g. a service manager stopped it with the run): the CLI stops waiting for it."""
HEALTH_INTERVAL = 1.0

_err = Console(stderr=True)


def _quiet_prefect(live_bar: bool) -> None:
    """Keep the terminal for the sequence: Prefect's per-task lines go to debug level.

    With the live progress bar, Prefect's console shows warnings and errors only
    (its handler writes around the bar); the run's logs still reach the server.
    """
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")
    if live_bar:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


@contextmanager
def _prefect_server(console: Console) -> Iterator[tuple[str, str]]:
    """Point Prefect at a server for the run; yields its API and UI URLs.

    A configured ``PREFECT_API_URL`` is used as it is; otherwise the local server that
    shotflow manages is started (or reused) and used for this run.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield str(PREFECT_API_URL.value()), str(PREFECT_UI_URL.value() or "")
        return
    from ._local_server import await_server, ensure_server

    with console.status("starting the local Prefect server (the first time takes a while)..."):
        info, started = ensure_server(wait=False)
        if not info.ready:
            import flows.run  # noqa: F401 - the run's imports (2-3 s) overlap the server's start

            info = await_server(info)
    if started:
        console.print(f"started the local Prefect server: {info.ui_url} (`shotflow server stop` stops it)")
    with temporary_settings({PREFECT_API_URL: info.api_url}):
        yield info.api_url, info.ui_url


@dataclass
class _Watch:
    """What the CLI learns of the run from its progress snapshots."""

    last: RunProgress | None = None
    announced: bool = False
    stored: anyio.Event = field(default_factory=anyio.Event)


async def _server_lost(api_url: str) -> None:
    """Return once the server at ``api_url`` has not answered for :data:`SERVER_LOST_SECONDS`."""
    import httpx

    silent_since: float | None = None
    async with httpx.AsyncClient(timeout=HEALTH_INTERVAL) as client:
        while True:
            try:
                answered = (await client.get(f"{api_url}/health")).status_code == 200
            except httpx.HTTPError:
                answered = False
            now = anyio.current_time()
            if answered:
                silent_since = None
            elif silent_since is None:
                silent_since = now
            elif now - silent_since >= SERVER_LOST_SECONDS:
                return
            await anyio.sleep(HEALTH_INTERVAL)


async def _run_flow(
    call: Callable[[], Awaitable[Any]], watch: _Watch, api_url: str, server_lost: Callable[[], NoReturn]
) -> Any:
    """Run the flow and return its final state.

    If the Prefect server stops answering after the store recorded the run's final state
    (a service manager stopped both), ``server_lost`` is called: the devices are exited and
    the store holds the outcome, and Prefect's own bookkeeping, which retries an absent
    server, must not keep the process alive.
    """
    state: Any = None
    async with anyio.create_task_group() as tg:

        async def flow() -> None:
            nonlocal state
            state = await call()
            tg.cancel_scope.cancel()

        tg.start_soon(flow)
        await watch.stored.wait()
        await _server_lost(api_url)
        logger.warning("the Prefect server stopped answering; the store holds the run's outcome")
        server_lost()
    return state


def _leave(code: int) -> NoReturn:
    """End the process now with ``code``, standard streams flushed (see :func:`_run_flow`)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _exit_code_of(state: str | None) -> int:
    return {"finished": 0, "interrupted": EXIT_INTERRUPTED}.get(state or "", EXIT_FAILED)


def _report_from_store(watch: _Watch) -> int:
    """Summarise a run whose Prefect state never came back, from its store."""
    last = watch.last
    if last is None or last.store is None:
        _err.print("[bold red]sequence failed:[/] the run ended before creating its store")
        return EXIT_FAILED
    from tasks.store import store_state

    attrs = store_state(last.store)
    state = str(attrs.get("state"))
    summary = {
        "store": last.store,
        "state": state,
        "completed_shots": attrs.get("completed_shots"),
        "expected_shots": attrs.get("expected_shots"),
        "error": attrs.get("error"),
    }
    if state == "finished":
        print(json.dumps(summary, indent=2))
    else:
        _err.print(f"[bold red]sequence {state}:[/] {summary['completed_shots']} shots kept in {last.store}")
    return _exit_code_of(state)


def _hold_late_interrupts() -> None:
    """The run is over: ignore SIGINT so a Ctrl-C burst that outlasts it cannot kill the process
    while it reports and exits (Python's teardown resets a Python-level handler to the default
    action, which kills; an ignored signal stays ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(
    spec: SequenceSpec,
    store: Path | None,
    resume: bool,
    overrides: dict[str, str] | None = None,
    given: SequenceSpec | None = None,
) -> int:
    """Run ``spec`` (the effective one, overrides applied) and report; the flow run gets ``given``
    and ``overrides`` as its parameters, so its page shows what was asked."""
    console = Console(stderr=True)
    _quiet_prefect(live_bar=console.is_terminal)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} shots/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    watch = _Watch()
    with _prefect_server(console) as (api_url, ui_url):
        from flows.run import SequenceResult, progress_listener, run_sequence

        with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
            task_id = bar.add_task(spec.name, total=None, rate="-")

            def on_progress(p: RunProgress) -> None:
                watch.last = p
                if p.flow_run_id and not watch.announced:
                    watch.announced = True
                    where = f"{ui_url}/runs/flow-run/{p.flow_run_id}" if ui_url else p.flow_run_id
                    bar.console.print(f"flow run {p.flow_run_name!r}: {where}", soft_wrap=True)
                if p.state is not None:
                    watch.stored.set()
                rate = f"{p.completed / p.elapsed:.1f}" if p.elapsed > 0 and p.completed else "-"
                description = spec.name if p.phase == "running" else f"{spec.name}: {p.phase}"
                bar.update(task_id, completed=p.completed, total=p.expected, rate=rate, description=description)

            with progress_listener(on_progress):
                state = anyio.run(
                    _run_flow,
                    lambda: run_sequence(
                        given or spec,
                        store=str(store) if store else None,
                        resume=resume,
                        overrides=overrides or {},
                        return_state=True,
                    ),
                    watch,
                    api_url,
                    lambda: _leave(_report_from_store(watch)),
                )
    _hold_late_interrupts()
    if state is None:
        return _report_from_store(watch)
    if state.is_completed():
        result = state.result()
        print(json.dumps(result.model_dump(), indent=2))
        return 0
    message = state.message or state.name
    if state.is_cancelled():  # the state's message says why and what was kept
        _err.print(f"[bold yellow]sequence interrupted:[/] {message}")
        return EXIT_INTERRUPTED
    try:
        data = state.result(raise_on_failure=False)
    except BaseException as exc:  # noqa: BLE001 - the flow's own error carries the precise message
        data = exc
    if isinstance(data, SequenceResult):  # a failed state that holds the run's result, not an error
        return _report_result(data, message)
    if isinstance(data, BaseException):
        message = str(data) or message
    _err.print(f"[bold red]sequence {state.name.lower()}:[/] {message}")
    return EXIT_FAILED


def _report_result(result: SequenceResult, message: str) -> int:
    """Report a run from its SequenceResult (e.g. Prefect marked an interrupted run failed)."""
    if result.state == "interrupted":
        _err.print(
            f"[bold yellow]sequence interrupted:[/] {result.completed_shots} shots kept in {result.store} ({message})"
        )
        return EXIT_INTERRUPTED
    error = result.error["message"] if result.error else message
    _err.print(f"[bold red]sequence {result.state}:[/] {error} (store: {result.store})")
    return _exit_code_of(result.state)


def run_command(args: argparse.Namespace) -> int:
    """``shotflow run SPEC [--store PATH] [--set NAME=EXPR ...]``: the overrides are checked before any server."""
    spec, overrides = load_spec(args.spec), overrides_of(args)
    effective = apply_overrides(spec, overrides)  # a SpecError naming the key (exit 2) before any server
    return _run(effective, args.store, resume=False, overrides=overrides, given=spec)


def resume_command(args: argparse.Namespace) -> int:
    """``shotflow resume STORE``: the spec recorded in the store, continued in it."""
    from flows.run import check_resume
    from tasks.store import read_store_spec

    spec = load_spec(read_store_spec(args.store))  # validated like any spec: SpecError, exit 2
    check_resume(spec, args.store)  # and consistent with the stored shots, before any server
    return _run(spec, args.store, resume=True)
