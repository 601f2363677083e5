"""Compiling one shot for a set of compilers; runs in a worker thread or process.

Kept free of Prefect and zarr so that worker processes start quickly.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping
from typing import Any

from devices import DeviceCompiler, Shot, ShotCompilationError

_process_compilers: Mapping[str, DeviceCompiler] = {}


def compile_devices(
    compilers: Mapping[str, DeviceCompiler], names: Iterable[str], shot: Shot
) -> dict[str, Mapping[str, Any]]:
    """Run ``compile_shot_parameters`` of each named compiler for ``shot``.

    Raises :class:`ShotCompilationError` naming the shot and device; the cause is chained.
    """
    out: dict[str, Mapping[str, Any]] = {}
    for name in names:
        try:
            out[name] = compilers[name].compile_shot_parameters(shot)
        except ShotCompilationError:
            raise
        except Exception as exc:
            raise ShotCompilationError(shot.index, name, f"{type(exc).__name__}: {exc}") from exc
    return out


INTERRUPT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name))
"""Signals a worker process ignores: they are meant for the run, which shuts the pool down."""


def init_process(compilers: Mapping[str, DeviceCompiler]) -> None:
    """Process-pool initializer: keep this process's copy of the compilers, ignore interrupts.

    A terminal's Ctrl-C and a Prefect worker's cancel (``killpg`` with SIGTERM) reach the
    whole process group. The run handles them (shot finished, store and devices closed)
    and then shuts the pool down; a worker killed by them instead would break the pool
    under the run's feet, and its shutdown could wait for ever.
    """
    global _process_compilers
    _process_compilers = compilers
    for signum in INTERRUPT_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def compile_in_process(names: tuple[str, ...], shot: Shot) -> dict[str, Mapping[str, Any]]:
    """Compile ``shot`` with this worker process's compilers."""
    return compile_devices(_process_compilers, names, shot)


def warm_up() -> int:
    """A no-op task that forces a worker process to start (and import) ahead of the first shot."""
    return len(_process_compilers)
