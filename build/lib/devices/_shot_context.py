"""Per-shot synchronisation between the controllers of one shot (pure anyio).

The engine creates one :class:`ShotExchange` per shot attempt and hands each
controller its :class:`ShotContext`. Controllers meet at a barrier
(:meth:`ShotContext.wait_all_devices_ready`); the last one to arrive fixes the
trigger time; afterwards they exchange data by label. Every wait is an anyio
checkpoint and is cancelled by the enclosing task group.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

import anyio
import anyio.to_thread

from ._data import DataDeclaration, check_data
from ._device import DeviceController
from ._errors import DataDeclarationError, DeviceError, ShotContextError

__all__ = ["LABEL_PATTERN", "MAX_LABEL_LENGTH", "ShotContext", "ShotExchange", "run_blocking"]

logger = logging.getLogger(__name__)

LABEL_PATTERN = r"[A-Za-z][A-Za-z0-9_-]*"
"""A data label: the spec's name rule (``flows.sequence`` keeps the same pattern; a test checks it).

Stored as the zarr array ``<device>.<label>`` with dimensions ``<device>.<label>.y``...: a dot,
a slash or a character Prefect or a file system refuses would make another array or path.
"""
MAX_LABEL_LENGTH = 64
LABEL_HELP = f"letters, digits, '_' and '-', starting with a letter, at most {MAX_LABEL_LENGTH} characters"
_LABEL = re.compile(LABEL_PATTERN)


async def run_blocking[T, *Ts](fn: Callable[[*Ts], T], *args: *Ts, abandon_on_cancel: bool = False) -> T:
    """Run the blocking call ``fn(*args)`` in a worker thread and return its result.

    The helper for synchronous drivers: the event loop keeps running meanwhile.
    On cancellation the call is waited for (a driver call cannot be interrupted)
    unless ``abandon_on_cancel`` is true, in which case it is left to finish in
    the background. Exceptions raised by ``fn`` propagate unchanged.
    """
    return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=abandon_on_cancel)


class ShotExchange:
    """The meeting point of the controllers of one shot.

    ``device_names`` are the devices that run in this shot: the barrier opens
    when each of them has called :meth:`ShotContext.wait_all_devices_ready` or
    has been marked finished (:meth:`mark_finished`, done by :meth:`run`).
    Single-use: create a new exchange for each shot attempt. ``on_trigger``, if
    given, is called once, synchronously, when the barrier opens (the engine uses
    it to schedule its own bookkeeping while the shot plays, not while it is set up).
    ``declarations`` maps a device name to its declared data (:meth:`DeviceCompiler.declare_data`);
    a device with declarations may only signal those labels, each fitting its declaration.
    """

    def __init__(
        self,
        shot_index: int,
        parameters: Mapping[str, Any],
        device_names: Collection[str],
        on_trigger: Callable[[], None] | None = None,
        declarations: Mapping[str, Mapping[str, DataDeclaration]] | None = None,
    ) -> None:
        names = tuple(device_names)
        if len(set(names)) != len(names):
            raise ValueError(f"shot {shot_index}: duplicate device names in {names!r}")
        self.shot_index = shot_index
        self.parameters: Mapping[str, Any] = MappingProxyType(dict(parameters))
        self.device_names: tuple[str, ...] = names
        self.trigger_time: float | None = None
        """anyio clock time at which the last controller reached the barrier; None before."""
        self._arrived: set[str] = set()
        self._finished: set[str] = set()
        self._all_ready = anyio.Event()
        self._data: dict[str, Any] = {}
        self._data_events: dict[str, anyio.Event] = {}
        self._contexts: dict[str, ShotContext] = {}
        self._on_trigger = on_trigger
        self.declarations: Mapping[str, Mapping[str, DataDeclaration]] = {
            name: declared for name, declared in (declarations or {}).items() if declared
        }

    @property
    def data(self) -> dict[str, Any]:
        """A copy of the data signalled so far, keyed ``"<device>.<label>"``."""
        return dict(self._data)

    def context_for(self, device_name: str) -> ShotContext:
        """Return the (single) :class:`ShotContext` of ``device_name``; raise ``KeyError`` if it is not in the shot."""
        if device_name not in self.device_names:
            raise KeyError(
                f"device {device_name!r} is not part of shot {self.shot_index}; devices: {self.device_names}"
            )
        context = self._contexts.get(device_name)
        if context is None:
            context = self._contexts[device_name] = ShotContext(self, device_name)
        return context

    async def run(
        self, device_name: str, controller: DeviceController, device: Any, instructions: Mapping[str, Any]
    ) -> None:
        """Run ``controller.run_shot`` for ``device_name``, then mark it finished.

        Exceptions propagate unchanged (the caller's task group cancels the other controllers).
        """
        await controller.run_shot(device, instructions, self.context_for(device_name))
        self.mark_finished(device_name)

    def mark_finished(self, device_name: str) -> None:
        """Record that the controller of ``device_name`` returned.

        It then counts as arrived at the barrier, and waiters on its data that
        was never signalled fail instead of hanging.
        """
        self.context_for(device_name)
        self._finished.add(device_name)
        self.arrive(device_name)
        prefix = f"{device_name}."
        for key, event in self._data_events.items():
            if key.startswith(prefix) and key not in self._data:
                event.set()

    # -- the barrier and the data, as ShotContext uses them ----------------------------------------

    def arrive(self, device_name: str) -> None:
        """Record that ``device_name`` is ready; the last arrival triggers the shot."""
        self._arrived.add(device_name)
        if not self._all_ready.is_set() and self._arrived.issuperset(self.device_names):
            self.trigger_time = anyio.current_time()
            logger.debug("shot %d triggered", self.shot_index)
            self._all_ready.set()
            if self._on_trigger is not None:
                self._on_trigger()

    async def all_ready(self) -> None:
        """Wait until every device of the shot has arrived (the trigger)."""
        await self._all_ready.wait()

    def has_data(self, key: str) -> bool:
        """Whether ``key`` was signalled in this shot."""
        return key in self._data

    def signal(self, key: str, value: Any) -> None:
        """Publish ``value`` under ``key`` and wake its waiters."""
        self._data[key] = value
        event = self._data_events.get(key)
        if event is not None:
            event.set()

    async def wait_for(self, waiter: str, key: str) -> Any:
        """Wait, as device ``waiter``, until ``key`` is signalled; raises if it never can be."""
        device, sep, label = key.partition(".")
        if not sep or not label:
            raise ShotContextError(f"device {waiter!r}: data key {key!r} must be '<device>.<label>'")
        if device not in self.device_names:
            raise DeviceError(waiter, f"waits for {key!r} but device {device!r} does not run in shot {self.shot_index}")
        while key not in self._data:
            if device in self._finished:
                raise DeviceError(
                    waiter, f"waits for {key!r} but {device!r} finished shot {self.shot_index} without signalling it"
                )
            event = self._data_events.get(key)
            if event is None:
                event = self._data_events[key] = anyio.Event()
            await event.wait()
        return self._data[key]


class ShotContext:
    """What a controller sees of its shot: index, parameters, barrier, data exchange, timing.

    Obtained from :meth:`ShotExchange.context_for`; one per controller per shot.
    """

    def __init__(self, exchange: ShotExchange, device_name: str) -> None:
        self._exchange = exchange
        self.device_name = device_name
        self._barrier_called = False

    @property
    def index(self) -> int:
        """The shot index."""
        return self._exchange.shot_index

    @property
    def parameters(self) -> Mapping[str, Any]:
        """The shot's parameters (read-only, SI values)."""
        return self._exchange.parameters

    @property
    def trigger_time(self) -> float | None:
        """The anyio clock time of the trigger, or None before every device is ready."""
        return self._exchange.trigger_time

    async def wait_all_devices_ready(self) -> None:
        """Declare this device ready and wait until every device of the shot is.

        The shot is triggered when the last device arrives. Call once per shot:
        a second call raises :class:`ShotContextError`. Cancellable; a
        controller cancelled while waiting still counts as arrived.
        """
        if self._barrier_called:
            raise ShotContextError(
                f"device {self.device_name!r} called wait_all_devices_ready twice in shot {self.index}"
            )
        self._barrier_called = True
        self._exchange.arrive(self.device_name)
        await self._exchange.all_ready()

    def signal_data(self, label: str, value: Any) -> None:
        """Publish ``value`` as ``"<device>.<label>"``; wakes its waiters.

        Raises :class:`ShotContextError` if the label was already signalled in this shot
        or is not a valid name (:data:`LABEL_PATTERN`: it becomes a zarr array ``<device>.<label>``),
        and :class:`DataDeclarationError` if the device declared its data and ``label`` is not
        declared, or ``value`` has another dimension count, shape or dtype than declared.
        """
        if not isinstance(label, str) or len(label) > MAX_LABEL_LENGTH or not _LABEL.fullmatch(label):
            shown = repr(label) if len(repr(label)) <= 80 else repr(label)[:77] + "..."
            raise ShotContextError(
                f"device {self.device_name!r}: data label {shown} is not a valid name ({LABEL_HELP})"
            )
        declared = self._exchange.declarations.get(self.device_name)
        if declared is not None:
            declaration = declared.get(label)
            if declaration is None:
                raise DataDeclarationError(
                    self.device_name, f"signalled undeclared data {label!r}; declared: {', '.join(sorted(declared))}"
                )
            value = check_data(self.device_name, label, declaration, value)
        key = f"{self.device_name}.{label}"
        if self._exchange.has_data(key):
            raise ShotContextError(f"device {self.device_name!r} signalled {label!r} twice in shot {self.index}")
        self._exchange.signal(key, value)

    async def wait_data(self, key: str) -> Any:
        """Wait until ``key`` (``"<device>.<label>"``) is signalled and return its value.

        Raises :class:`DeviceError` if that device is not in the shot or finished
        without signalling it. Cancellable.
        """
        return await self._exchange.wait_for(self.device_name, key)

    def elapsed(self) -> float:
        """Seconds since the trigger; raises :class:`ShotContextError` before the trigger."""
        return anyio.current_time() - self._require_trigger("elapsed")

    async def wait_until(self, t: float) -> None:
        """Sleep until ``t`` seconds after the trigger (a checkpoint even if already past)."""
        await anyio.sleep_until(self._require_trigger("wait_until") + t)

    async def run_blocking[T](self, fn: Callable[..., T], *args: Any) -> T:
        """Same as :func:`run_blocking`: run a blocking driver call in a worker thread."""
        return await run_blocking(partial(fn, *args))

    def _require_trigger(self, what: str) -> float:
        trigger = self._exchange.trigger_time
        if trigger is None:
            raise ShotContextError(
                f"device {self.device_name!r} called {what}() before the trigger of shot {self.index}; "
                "call await shot.wait_all_devices_ready() first"
            )
        return trigger
