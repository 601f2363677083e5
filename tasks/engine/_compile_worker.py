"""Compiling one shot for a set of compilers; runs in a worker thread or process.

Kept free of Prefect and zarr so that worker processes start quickly.
"""

from __future__ import annotations

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
    """Process-pool initializer: keep this process's copy of the compilers."""
    global _process_compilers
    _process_compilers = compilers


def compile_in_process(names: tuple[str, ...], shot: Shot) -> dict[str, Mapping[str, Any]]:
    """Compile ``shot`` with this worker process's compilers."""
    return compile_devices(_process_compilers, names, shot)


def warm_up() -> int:
    """A no-op task that forces a worker process to start (and import) ahead of the first shot."""
    return len(_process_compilers)
