"""The CLI commands that run and inspect sequences: ``run``, ``resume``, ``show``."""

from __future__ import annotations

import argparse
import os
import asyncio
import json

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tasks import describe_store, plot_store, read_store_spec

from ._cli import command
from ._load import load_spec
from ._progress import Progress as RunProgress
from ._progress import progress_listener
from ._spec import SequenceSpec

__all__: list[str] = []

_err = Console(stderr=True)


def _quiet_prefect(live_bar: bool) -> None:
    """Keep the terminal for the sequence: Prefect's per-task lines go to debug level.

    With the live progress bar, Prefect's console shows warnings and errors only
    (its handler writes around the bar); the run's logs still reach the server.

    Without ``PREFECT_API_URL`` Prefect starts a throwaway server for this run;
    its shutdown chatter (and anonymous usage reports) are switched off unless
    the user configured them.
    """
    os.environ.setdefault("PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL", "WARNING")
    if live_bar:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    if not os.environ.get("PREFECT_API_URL"):
        # a loaded laptop may need more than Prefect's default 20 s to start the server
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _run(spec: SequenceSpec, store: Path | None, resume: bool) -> int:
    console = Console(stderr=True)
    _quiet_prefect(live_bar=console.is_terminal)
    from ._run_sequence import run_sequence

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} shots/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task_id = bar.add_task(spec.name, total=None, rate="-")

        def on_progress(p: RunProgress) -> None:
            rate = f"{p.completed / p.elapsed:.1f}" if p.elapsed > 0 else "-"
            bar.update(task_id, completed=p.completed, total=p.expected, rate=rate)

        with progress_listener(on_progress):
            state = asyncio.run(
                run_sequence(spec, store=str(store) if store else None, resume=resume, return_state=True)
            )
    if state.is_completed():
        result = state.result()
        print(json.dumps(result.model_dump(), indent=2))
        return 0
    message = state.message or state.name
    try:
        state.result()
    except BaseException as exc:  # the flow's own error carries the precise message
        message = str(exc) or message
    _err.print(f"[bold red]sequence {state.name.lower()}:[/] {message}")
    return 130 if state.is_cancelled() else 1


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="sequence description (YAML or JSON)")
    parser.add_argument("--store", type=Path, help="zarr store to write (a folder ending in .zarr)")


def _store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, help="the sequence's zarr store")


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    _store_argument(parser)
    parser.add_argument("--plot", metavar="VAR", help="data variable to plot (e.g. camera.atoms)")
    parser.add_argument("--against", metavar="PARAM", help="scan parameter for the x axis")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="PNG file to write")


@command("run", "run a sequence on the instruments (locally; Prefect starts embedded)", _run_arguments)
def _cmd_run(args: argparse.Namespace) -> int:
    return _run(load_spec(args.spec), args.store, resume=False)


@command("resume", "continue an interrupted or crashed sequence in its own store", _store_argument)
def _cmd_resume(args: argparse.Namespace) -> int:
    spec = SequenceSpec.model_validate_json(read_store_spec(args.store))
    return _run(spec, args.store, resume=True)


@command("show", "summarise a store; --plot VAR --against PARAM -o FILE draws a PNG", _show_arguments)
def _cmd_show(args: argparse.Namespace) -> int:
    print(describe_store(args.store))
    if args.plot:
        if not args.against or not args.output:
            _err.print("--plot needs --against PARAM and -o FILE")
            return 2
        plot_store(args.store, args.plot, args.against, args.output)
        print(f"plot written to {args.output}")
    return 0


