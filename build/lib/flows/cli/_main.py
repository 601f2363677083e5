"""The ``shotflow`` command line: one function per subcommand, registered in :data:`COMMANDS`.

Bad input exits with code 2 and one message on stderr naming the field path.

``plan``, ``schema`` and ``--help`` answer at once: this module imports the sequence language
and the errors only. The commands that need Prefect or the store (``run``, ``resume``, ``show``,
``compact``, ``server``) are registered by the name of their function, and their module is
imported when they run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from devices import ShotflowError
from flows._errors import SpecError

__all__ = ["COMMANDS", "console_main", "main", "overrides_of"]

logger = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
FLUSH_TIMEOUT = 3.0
"""Seconds given at exit to Prefect's background senders (logs, events) to reach the server."""

Command = Callable[[argparse.Namespace], int]
Arguments = Callable[[argparse.ArgumentParser], None]
COMMANDS: dict[str, tuple[Command | str, Arguments, str]] = {}
"""Subcommand name -> (run, add_arguments, help); ``run`` is a function or the ``".module:function"``
(in this package) imported when the subcommand runs. Add one with :func:`command` or :func:`lazy_command`."""


def command(name: str, help: str, arguments: Arguments = lambda p: None) -> Callable[[Command], Command]:
    """Register ``function(args) -> exit code`` as subcommand ``name``."""

    def register(function: Command) -> Command:
        COMMANDS[name] = (function, arguments, help)
        return function

    return register


def lazy_command(name: str, help: str, arguments: Arguments, target: str) -> None:
    """Register subcommand ``name`` run by ``target`` (``".module:function"``), imported only when it runs."""
    COMMANDS[name] = (target, arguments, help)


def _resolve(run: Command | str) -> Command:
    if callable(run):
        return run
    module, _, function = run.partition(":")
    return getattr(importlib.import_module(module, __package__), function)  # type: ignore[no-any-return]


def _set_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=EXPR",
        help="replace a global parameter or a device setting (devices.<device>.<field>) for this run; repeatable",
    )


def overrides_of(args: argparse.Namespace) -> dict[str, str]:
    """The ``--set NAME=EXPR`` options as a mapping; raises SpecError for one without ``=`` or given twice."""
    overrides: dict[str, str] = {}
    for option in args.set:
        name, equals, expression = option.partition("=")
        name = name.strip()
        if not equals or not name:
            raise SpecError(f"--set {option!r}: write --set NAME=EXPR, e.g. --set devices.camera.exposure='2 ms'")
        if name in overrides:
            raise SpecError(f"--set {name}: given twice")
        overrides[name] = expression.strip()
    return overrides


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="sequence description (YAML or JSON)")
    parser.add_argument("--json", action="store_true", help="one JSON object per shot, SI units")
    _set_argument(parser)


@command("plan", "validate SPEC and list its shots and parameters (touches no instrument)", _plan_arguments)
def _plan(args: argparse.Namespace) -> int:
    from flows.sequence import apply_overrides, load_spec, plan_lines

    spec = apply_overrides(load_spec(args.spec), overrides_of(args))
    lines = plan_lines(spec, as_json=args.json)
    try:
        for line in lines:
            sys.stdout.write(line + "\n")
    except BrokenPipeError:  # `shotflow plan big.yaml | head`: the reader has what it wanted
        # point stdout at devnull so that the flush at exit does not fail again (Python's signal docs)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


@command("schema", "print the JSON Schema of a sequence description")
def _schema(args: argparse.Namespace) -> int:
    from flows.sequence import SequenceSpec

    print(json.dumps(SequenceSpec.model_json_schema(), indent=2))
    return 0


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="sequence description (YAML or JSON)")
    parser.add_argument("--store", type=Path, help="zarr store to write (a folder ending in .zarr)")
    _set_argument(parser)


def _store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, help="the sequence's zarr store")


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    _store_argument(parser)
    parser.add_argument("--plot", metavar="VAR", help="data variable to plot (e.g. camera.atoms)")
    parser.add_argument(
        "--against", metavar="PARAM", help="x axis (default: the scanned parameter if there is one, else shot)"
    )
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="PNG file to write")


def _watch_arguments(parser: argparse.ArgumentParser) -> None:
    _store_argument(parser)
    parser.add_argument("--plot", metavar="VAR", required=True, help="data variable to plot (e.g. camera.atoms)")
    parser.add_argument(
        "--against", metavar="PARAM", help="x axis (default: the scanned parameter if there is one, else shot)"
    )
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE.png", help="PNG file to rewrite as shots complete (else a window)"
    )
    parser.add_argument("--every", type=float, default=1.0, metavar="SECONDS", help="how often to look (default 1)")


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("status", "stop"), help="status: is it running, where; stop: stop it")


lazy_command(
    "run",
    "run a sequence on the instruments (no server needed: shotflow starts a local one)",
    _run_arguments,
    "._run:run_command",
)
lazy_command(
    "resume", "continue an interrupted or crashed sequence in its own store", _store_argument, "._run:resume_command"
)
lazy_command(
    "show",
    "summarise a store; --plot VAR [--against PARAM] -o FILE draws a PNG",
    _show_arguments,
    "._show:show_command",
)
lazy_command(
    "compact",
    "rewrite a finished store's per-shot chunk files into a few shards (values unchanged)",
    _store_argument,
    "._compact:compact_command",
)
lazy_command(
    "watch",
    "plot VAR of a store as its shots complete (a run of this or another machine), until the run ends",
    _watch_arguments,
    "._watch:watch_command",
)
lazy_command(
    "server",
    "status or stop of the local Prefect server that `shotflow run` starts",
    _server_arguments,
    "._server:server_command",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand (imports none of their modules)."""
    parser = argparse.ArgumentParser(prog="shotflow", description="Run experimental sequences as Prefect flows.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (run, arguments, help) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help, description=help)
        arguments(sub)
        sub.set_defaults(run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 for bad input, 1 for other shotflow errors; one message on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return _resolve(args.run)(args)
    except SpecError as exc:
        print(f"shotflow {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ShotflowError as exc:
        print(f"shotflow {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"shotflow {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


_PREFECT_SENDERS = (("prefect.logging.handlers", "APILogWorker"), ("prefect.events.worker", "EventsWorker"))
"""Prefect's background senders (module, class): the run's logs and events."""


def _prefect_flushed(timeout: float) -> bool:
    """Give Prefect's log and event senders ``timeout`` s to empty their queues; False if they could not.

    Both retry an unreachable server, and the interpreter's shutdown would wait for them. A
    sender whose module this process never imported (no run: ``plan``, ``show``...) has sent
    nothing; this module imports no Prefect itself (see ``pyproject.toml``, import contracts).
    """
    for module, name in _PREFECT_SENDERS:
        loaded = sys.modules.get(module)
        if loaded is None:
            continue
        _, pending = getattr(loaded, name).drain_all(timeout=timeout)
        if pending:
            return False
    return True


def console_main() -> NoReturn:
    """The ``shotflow`` executable: :func:`main`, then exit within :data:`FLUSH_TIMEOUT` s.

    When the Prefect server is gone (a Ctrl-C reached it, it was stopped), the run's
    outcome is already in its store and printed: the process exits without waiting for
    Prefect's senders to give up.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    if not _prefect_flushed(FLUSH_TIMEOUT):
        os._exit(code)
    sys.exit(code)
