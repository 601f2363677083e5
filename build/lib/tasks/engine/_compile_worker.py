"""Compiling one shot for a set of compilers; runs in a worker thread or process.

Kept free of Prefect and zarr so that worker processes start quickly.
"""

from __future__ import annotations

import os
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


def init_process(compilers: Mapping[str, DeviceCompiler]) -> None:
    """Process-pool initializer: keep this process's copy of the compilers, out of the run's process group.

    A terminal's Ctrl-C and a Prefect worker's cancel (``killpg`` with SIGTERM) reach the
    run's whole process group. They are meant for the run, which finishes its shot, closes
    the store and the devices, and then shuts the pool down; a compile worker killed by
    them instead breaks the pool under the run's feet. So a worker leaves the group
    (POSIX) and ignores SIGINT (everywhere); it keeps SIGTERM's default action, with which
    the pool stops a worker when it must. When the run dies, a worker exits with its pipe.
    """
    global _process_compilers
    _process_compilers = compilers
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def compile_in_process(names: tuple[str, ...], shot: Shot) -> dict[str, Mapping[str, Any]]:
    """Compile ``shot`` with this worker process's compilers."""
    return compile_devices(_process_compilers, names, shot)


def warm_up() -> int:
    """A no-op task that forces a worker process to start (and import) ahead of the first shot."""
    return len(_process_compilers)
