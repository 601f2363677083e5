"""Hardware locks: one Prefect global concurrency limit (of 1 slot) per device.

Two sequence runs that use the same device never run at the same time, however
they were started (CLI, UI, schedule, API): before its devices are entered, a
run takes one slot of ``shotflow-device-<name>`` for every device it uses, in
one atomic request to the Prefect server (all or nothing, so two runs can never
each hold half of what the other needs), and gives them back after its devices
are exited.

A lock never outlives its holder. While a run holds a device, the Prefect
Variable ``shotflow_device_holder_<name>`` describes it (flow run, process, host,
last renewal) and is renewed with the slots' lease every :data:`RENEW_INTERVAL`
seconds; it is deleted on release. A run that finds a device busy takes it over
when the holder is dead:

- its process is gone on this host (at once);
- its flow run is in a final state (at once, on any host);
- it has not renewed its hold for :data:`LEASE_SECONDS` (any host);
- or nobody has recorded holding the device while we waited :data:`ORPHAN_SECONDS`.

Taking over gives the holder's slots back through its lease when the server still
knows it, and otherwise sets the limit's active slots back to zero: a restarted
server has forgotten the leases of the runs that held devices. Takeovers of one device
are serialised through a small decaying limit (``shotflow-takeover-<name>``), so
two waiters never both reset it. The dead holder's flow run, if still marked
running, is marked Crashed with the reason.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import anyio
import httpx
import psutil
from prefect import get_client
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.states import Crashed
from prefect.variables import Variable

from flows._errors import DeviceBusyError

__all__ = [
    "LEASE_SECONDS",
    "LIMIT_PREFIX",
    "device_busy_report",
    "device_limit_name",
    "device_lock",
]

logger = logging.getLogger(__name__)

LIMIT_PREFIX = "shotflow-device-"
"""Prefix of the global concurrency limit of each device."""
TAKEOVER_PREFIX = "shotflow-takeover-"
"""Prefix of the limit that serialises takeovers of a device (its slot decays by itself)."""
HOLDER_PREFIX = "shotflow_device_holder_"
"""Prefix of the Prefect Variable describing the run that holds a device."""
LEASE_SECONDS = 60.0
"""Lease of the held slots (the server's minimum); a hold not renewed for this long is dead."""
ORPHAN_SECONDS = 2 * LEASE_SECONDS
"""A busy device that no run has recorded holding for this long is taken over."""
RENEW_INTERVAL = 20.0
"""Seconds between two renewals of the lease and of the holder record."""
POLL_INTERVAL = 1.0
"""Longest pause between two attempts to take busy devices (the server may suggest shorter)."""
MIN_PAUSE = 0.2
"""Shortest pause between two attempts: a retry never spins."""
TAKEOVER_GUARD_SECONDS = 30.0
"""How long a takeover of one device that died half-way excludes another (its guard slot decays)."""
RELEASE_TIMEOUT = 30.0
"""Seconds allowed to give the devices back (shielded from cancellation); a busy SQLite server
can take seconds per write."""
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED"})


def device_limit_name(device: str) -> str:
    """The global concurrency limit that guards ``device``."""
    return LIMIT_PREFIX + device


def _holder_variable(device: str) -> str:
    return HOLDER_PREFIX + re.sub(r"[^a-z0-9_]", "_", device.lower())


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Holder:
    """Who holds a device: stored as the device's holder Variable."""

    lease_id: str
    host: str
    pid: int
    pid_started: float
    since: str
    renewed: str
    flow_run: str | None = None
    flow_run_name: str | None = None

    @classmethod
    def parse(cls, value: Any) -> _Holder | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(**{k: value[k] for k in cls.__dataclass_fields__ if k in value})
        except TypeError:
            return None

    def describe(self) -> str:
        who = f"flow run {self.flow_run_name!r} ({self.flow_run})" if self.flow_run else "a run outside Prefect"
        return f"held by {who}, process {self.pid} on {self.host}, since {self.since}"


def _process_is_gone(holder: _Holder) -> bool:
    """True when ``holder``'s process was on this host and is no longer running."""
    if holder.host != socket.gethostname() or holder.pid == os.getpid():
        return False
    try:
        return abs(psutil.Process(holder.pid).create_time() - holder.pid_started) > 1.0  # pid reused
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


async def _holder(device: str) -> _Holder | None:
    return _Holder.parse(await Variable.aget(_holder_variable(device), default=None))


async def _why_dead(client: PrefectClient, holder: _Holder | None, unrecorded: float) -> str | None:
    """Why the holder of a busy device is dead, or None while it may be alive.

    ``unrecorded`` is how long the device has been seen busy with no holder record.
    """
    if holder is None:
        # an unrecorded slot may belong to a lease that the server's repossessor has yet to
        # expire (or to a run that has just taken it): wait two leases, so that it never
        # expires onto the next holder
        if unrecorded >= ORPHAN_SECONDS:
            return f"no run has recorded holding it for {unrecorded:.0f} s"
        return None
    if _process_is_gone(holder):
        return f"its process {holder.pid} on this host is gone"
    if holder.flow_run:
        try:
            run = await client.read_flow_run(UUID(holder.flow_run))
        except (ObjectNotFound, ValueError):
            run = None
        if run is not None and run.state is not None and run.state.type.value in FINAL_STATES:
            return f"its flow run ended ({run.state.name})"
    try:
        silent = (_now() - datetime.fromisoformat(holder.renewed)).total_seconds()
    except ValueError:
        return None
    if silent > LEASE_SECONDS:
        return f"it has not renewed its hold for {silent:.0f} s"
    return None


async def _ensure_limit(client: PrefectClient, name: str, **settings: Any) -> None:
    try:
        await client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        try:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1, **settings))
            logger.debug("created the concurrency limit %s", name)
        except ObjectAlreadyExists:
            pass  # another run created it at the same time


async def _guard_takeover(client: PrefectClient, device: str) -> bool:
    """Take the device's takeover guard; False if another process is taking it over."""
    name = TAKEOVER_PREFIX + device
    await _ensure_limit(client, name, slot_decay_per_second=1.0 / TAKEOVER_GUARD_SECONDS)
    try:
        await client.increment_concurrency_slots(names=[name], slots=1, mode="rate_limit")
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 423:
            return False
        raise
    return True


async def _release_guard(client: PrefectClient, device: str) -> None:
    """Give the takeover guard back (it also decays by itself if this process dies first)."""
    with anyio.CancelScope(shield=True):
        await client.release_concurrency_slots(names=[TAKEOVER_PREFIX + device], slots=1, occupancy_seconds=0.1)


async def _mark_crashed(client: PrefectClient, holder: _Holder, reason: str) -> None:
    if not holder.flow_run:
        return
    try:
        run = await client.read_flow_run(UUID(holder.flow_run))
        if run.state is not None and run.state.type.value not in FINAL_STATES:
            await client.set_flow_run_state(
                run.id, Crashed(message=f"shotflow: the run's process died ({reason}); its devices were taken over")
            )
    except Exception as exc:  # noqa: BLE001 - only for the record in the UI
        logger.debug("could not mark flow run %s crashed: %s", holder.flow_run, exc)


async def _lease_known(client: PrefectClient, lease_id: str) -> bool:
    """Whether the server still knows ``lease_id`` (a restarted server has forgotten it)."""
    try:
        await client.renew_concurrency_lease(UUID(lease_id), lease_duration=LEASE_SECONDS)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code in (404, 410):
            return False
        raise
    except ValueError:
        return False
    return True


async def _free(client: PrefectClient, devices: list[str], holder: _Holder | None) -> None:
    """Give back the slots of a dead holder on ``devices``: through its lease when the server
    knows it (exactly its slots, and the lease is revoked, so it never expires onto a new
    holder), otherwise by setting each device's active slots back to zero (nobody else can
    hold a full limit)."""
    if holder is not None and await _lease_known(client, holder.lease_id):
        await client.release_concurrency_slots_with_lease(UUID(holder.lease_id))
        return
    for device in devices:
        await client.update_global_concurrency_limit(
            device_limit_name(device), GlobalConcurrencyLimitUpdate(active_slots=0)
        )


class _Unrecorded:
    """How long each busy device has been held without a holder record (an orphaned slot)."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}

    def seen(self, device: str, recorded: bool) -> float:
        """Seconds the device has been busy with no record, as observed by this waiter."""
        now = anyio.current_time()
        if recorded:
            self._since.pop(device, None)
            return 0.0
        return now - self._since.setdefault(device, now)

    def forget(self, device: str) -> None:
        self._since.pop(device, None)


async def _held_by(devices: list[str], holder: _Holder) -> list[str]:
    """The devices among ``devices`` whose record names ``holder``."""
    return [device for device in devices if await _holder(device) == holder]


async def _forget_holder(devices: list[str], holder: _Holder) -> None:
    """Delete the records of ``holder`` on ``devices`` (concurrently): always before its slots
    are given back, so that a record never outlives the slot it describes."""

    async def forget(device: str) -> None:
        if await _holder(device) == holder:
            await Variable.aunset(_holder_variable(device))

    async with anyio.create_task_group() as tg:
        for device in devices:
            tg.start_soon(forget, device)


async def _take_over_dead(client: PrefectClient, devices: list[str], unrecorded: _Unrecorded) -> list[str]:
    """Free the busy devices whose holder is dead; returns the devices freed."""
    freed: list[str] = []
    for device in devices:
        if device in freed:
            continue
        limit = await client.read_global_concurrency_limit_by_name(device_limit_name(device))
        if limit.active_slots < limit.limit:
            unrecorded.forget(device)
            continue
        holder = await _holder(device)
        reason = await _why_dead(client, holder, unrecorded.seen(device, holder is not None))
        if reason is None or not await _guard_takeover(client, device):
            continue
        try:
            if await _holder(device) != holder:  # someone took it meanwhile: not ours to reset
                continue
            held = [device] if holder is None else await _held_by(devices, holder)
            if holder is not None:
                await _forget_holder(held, holder)
            await _free(client, held, holder)
        finally:
            await _release_guard(client, device)
        for taken in held:
            unrecorded.forget(taken)
        who = holder.describe() if holder is not None else "held by an unknown run"
        logger.warning("device %s was %s; %s: it is taken over", ", ".join(held), who, reason)
        if holder is not None:
            await _mark_crashed(client, holder, reason)
        freed.extend(held)
    return freed


async def device_busy_report(devices: Iterable[str]) -> dict[str, str]:
    """Which of ``devices`` are held right now, each with a description of its holder (best effort)."""
    busy: dict[str, str] = {}
    async with get_client() as client:
        for device in sorted(set(devices)):
            try:
                limit = await client.read_global_concurrency_limit_by_name(device_limit_name(device))
            except ObjectNotFound:
                continue
            if limit.active_slots < limit.limit:
                continue
            holder = await _holder(device)
            busy[device] = holder.describe() if holder is not None else "held by another run"
    return busy


def _busy_message(busy: dict[str, str], fallback: list[str], why: str) -> str:
    if not busy:
        return f"{why}: devices {', '.join(fallback)} are in use by another run"
    return why + ": " + "; ".join(f"device {device!r} is busy ({who})" for device, who in busy.items())


async def _acquire(
    client: PrefectClient,
    devices: list[str],
    mode: Literal["wait", "fail"],
    timeout: float | None,
    lease_holder: ConcurrencyLeaseHolder | None,
    on_busy: Callable[[str], None] | None,
) -> UUID:
    names = [device_limit_name(d) for d in devices]
    started = anyio.current_time()
    announced = False
    unrecorded = _Unrecorded()
    while True:
        try:
            response = await client.increment_concurrency_slots_with_lease(
                names=names, slots=1, mode="concurrency", lease_duration=LEASE_SECONDS, holder=lease_holder
            )
            if announced:
                logger.info("devices %s are free: the run goes on", ", ".join(devices))
            return UUID(response.json()["lease_id"])
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:
                raise
            retry_after = float(exc.response.headers.get("Retry-After", POLL_INTERVAL))
        waited = anyio.current_time() - started
        if await _take_over_dead(client, devices, unrecorded):
            await anyio.sleep(MIN_PAUSE)
            continue
        if mode == "fail":
            busy = await device_busy_report(devices)
            raise DeviceBusyError(
                _busy_message(busy, devices, "execution.device_lock is 'fail'"), tuple(busy or devices)
            )
        if timeout is not None and waited >= timeout:
            busy = await device_busy_report(devices)
            raise DeviceBusyError(
                _busy_message(busy, devices, f"gave up after execution.device_lock_timeout = {timeout:g} s"),
                tuple(busy or devices),
            )
        if not announced:
            busy = await device_busy_report(devices)
            message = _busy_message(busy, devices, "waiting for devices")
            logger.warning("%s", message)
            if on_busy is not None:
                on_busy(message)
            announced = True
        pause = max(MIN_PAUSE, min(retry_after, POLL_INTERVAL))
        if timeout is not None:
            pause = min(pause, max(MIN_PAUSE, timeout - waited))
        await anyio.sleep(pause)


class _Hold:
    """The slots held by one run: the lease, renewed with the holder records until released."""

    def __init__(self, devices: list[str], lease_id: UUID, holder: _Holder) -> None:
        self.devices = devices
        self.lease_id = lease_id
        self.holder = holder
        self.lease_lost = False

    async def record(self) -> None:
        for device in self.devices:
            try:
                await Variable.aset(_holder_variable(device), asdict(self.holder), overwrite=True)
            except Exception as exc:  # noqa: BLE001 - a missing record only delays a takeover
                logger.warning("could not record the holder of device %s: %s", device, exc)

    async def keep(self) -> None:
        """Renew the lease and the holder records every :data:`RENEW_INTERVAL` s until cancelled.

        Each renewal is shielded (an HTTP call is never cut half-way); a failed one is logged
        and retried: a server hiccup must not abort a running scan. A lease the server no
        longer knows (it was restarted) is noted; the slots are then released by name.
        """
        async with get_client() as client:
            while True:
                await anyio.sleep(RENEW_INTERVAL)
                with anyio.CancelScope(shield=True), anyio.move_on_after(RENEW_INTERVAL):
                    await self._renew(client)

    async def _renew(self, client: PrefectClient) -> None:
        if not self.lease_lost:
            try:
                await client.renew_concurrency_lease(self.lease_id, lease_duration=LEASE_SECONDS)
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code in (404, 410):
                    self.lease_lost = True
                    logger.warning(
                        "the Prefect server no longer knows the lease of devices %s (it was restarted); "
                        "they stay held by this run",
                        ", ".join(self.devices),
                    )
                else:
                    logger.warning("could not renew the lease of devices %s: %s", ", ".join(self.devices), exc)
            except Exception as exc:  # noqa: BLE001
                logger.warning("could not renew the lease of devices %s: %s", ", ".join(self.devices), exc)
        self.holder = replace(self.holder, renewed=_now().isoformat(timespec="seconds"))
        await self.record()

    async def release(self) -> None:
        """Delete the holder records, then give the slots back (in that order: see
        :func:`_forget_holder`)."""
        await _forget_holder(self.devices, self.holder)
        async with get_client() as client:
            if self.lease_lost or not await _lease_known(client, str(self.lease_id)):
                # the server was restarted and forgot the lease: give the slots back by name
                await client.release_concurrency_slots(
                    names=[device_limit_name(d) for d in self.devices], slots=1, occupancy_seconds=1.0
                )
            else:
                await client.release_concurrency_slots_with_lease(self.lease_id)


def _this_holder(lease_id: UUID) -> _Holder:
    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    now = _now().isoformat(timespec="seconds")
    return _Holder(
        lease_id=str(lease_id),
        host=socket.gethostname(),
        pid=os.getpid(),
        pid_started=psutil.Process().create_time(),
        since=now,
        renewed=now,
        flow_run=str(flow_run.id) if flow_run is not None else None,
        flow_run_name=flow_run.name if flow_run is not None else None,
    )


@asynccontextmanager
async def device_lock(
    devices: Iterable[str],
    *,
    mode: Literal["wait", "fail"] = "wait",
    timeout: float | None = None,
    on_busy: Callable[[str], None] | None = None,
) -> AsyncIterator[None]:
    """Hold every device in ``devices`` exclusively for the body of the ``async with``.

    Creates the devices' concurrency limits (1 slot) when missing, then takes
    all slots at once. When another run holds one: a dead holder is taken over
    (see the module docstring); otherwise ``mode="wait"`` retries (pausing at
    least :data:`MIN_PAUSE` s, cancellable) until ``timeout`` seconds have passed
    (None: no limit), logging once which device is busy and who holds it;
    ``mode="fail"`` raises at once. Raises :class:`DeviceBusyError` naming each
    busy device and its holder. ``on_busy`` is called once with that message when the
    run starts waiting. The slots are released, and the holder records
    deleted, on every exit path, shielded from cancellation.
    """
    wanted = sorted(set(devices))
    if not wanted:
        yield
        return
    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    lease_holder = ConcurrencyLeaseHolder(type="flow_run", id=flow_run.id) if flow_run is not None else None
    async with get_client() as client:
        for device in wanted:
            await _ensure_limit(client, device_limit_name(device))
        lease_id = await _acquire(client, wanted, mode, timeout, lease_holder, on_busy)
    hold = _Hold(wanted, lease_id, _this_holder(lease_id))
    logger.info("holding devices %s", ", ".join(wanted))
    try:
        async with anyio.create_task_group() as keeper:
            keeper.start_soon(hold.keep, name=f"renew lease {lease_id}")
            try:
                await hold.record()
                yield
            finally:
                keeper.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the body's own error, as it was raised
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(RELEASE_TIMEOUT) as scope:
            try:
                await hold.release()
                logger.info("released devices %s", ", ".join(wanted))
            except Exception as exc:  # noqa: BLE001 - the next run takes them over
                logger.warning("could not release devices %s: %s", ", ".join(wanted), exc)
        if scope.cancelled_caught:
            logger.warning(
                "releasing devices %s took more than %.0f s; the next run takes them over",
                ", ".join(wanted),
                RELEASE_TIMEOUT,
            )
