"""The three roles of an instrument: compiler, device (connection) and controller."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

from ._configuration import DeviceConfiguration
from ._data import DataDeclaration
from ._shot import SequenceContext, Shot

if TYPE_CHECKING:
    from ._shot_context import ShotContext

__all__ = ["Device", "DeviceCompiler", "DeviceController"]


class Device:
    """The connection to one instrument, a flow-level resource.

    The constructor receives the keyword arguments returned by
    :meth:`DeviceCompiler.compile_initialization_parameters` and must do no I/O.
    The connection is opened in :meth:`__enter__` and closed in :meth:`__exit__`;
    both are synchronous (the engine calls them in worker threads, concurrently
    across devices). The engine calls ``__exit__`` exactly once for every
    device whose ``__enter__`` returned.
    """

    def __enter__(self) -> Self:
        """Connect to the instrument. Raise :class:`DeviceError` on failure."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Disconnect. Raise :class:`DeviceError` on failure (it is reported, not fatal to other exits)."""


class DeviceCompiler:
    """Turns a device's configuration and each shot's parameters into instructions.

    Created once per device per run with the device ``name``, its validated
    ``config`` and the ``sequence`` context. The constructor may raise
    :class:`DeviceNotUsed` to drop the device from the run. Compilers must be
    picklable (``compile_in_process = True`` compilers are shipped to worker
    processes) and their methods must not depend on state mutated between shots.
    """

    compile_in_process: ClassVar[bool] = False
    """True for CPU-heavy compilers: the engine compiles them in a process pool."""

    def __init__(self, name: str, config: DeviceConfiguration, sequence: SequenceContext) -> None:
        self.name = name
        self.config = config
        self.sequence = sequence

    def compile_initialization_parameters(self) -> Mapping[str, Any]:
        """Return the keyword arguments of the :class:`Device` constructor (default: none)."""
        return {}

    def declare_data(self) -> Mapping[str, DataDeclaration]:
        """Return the data labels the controller signals, each with its :class:`DataDeclaration`.

        Called once per sequence, before the first shot. A device that declares nothing (the
        default) may signal any label; one that declares labels may signal only those, each
        fitting its declaration (else :class:`DataDeclarationError`).
        """
        return {}

    def compile_shot_parameters(self, shot: Shot) -> Mapping[str, Any]:
        """Return the instructions for ``shot``, passed to :meth:`DeviceController.run_shot`.

        Raise any exception on failure; the engine reports it as a
        :class:`ShotCompilationError` naming the shot and the device.
        """
        return {}


class DeviceController(abc.ABC):
    """Runs one shot on an entered device; constructed by the engine without arguments.

    One controller instance per device serves every shot of the run.
    """

    @abc.abstractmethod
    async def run_shot(self, device: Any, instructions: Mapping[str, Any], shot: ShotContext) -> None:
        """Send ``instructions`` to ``device``, wait for the barrier, run the shot, signal data.

        Must call ``await shot.wait_all_devices_ready()`` once after programming
        the device (returning without calling it counts as ready). Blocking
        driver calls go through :func:`run_blocking`. May be cancelled at any
        await point when another controller of the shot fails or times out.
        """
