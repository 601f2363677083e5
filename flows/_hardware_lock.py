"""Hardware locks: one Prefect global concurrency limit (of 1 slot) per device.

Two sequence runs that use the same device never run at the same time, however
they were started (CLI, UI, schedule, API): before its devices are entered, a
run takes one slot of ``shotflow-device-<name>`` for every device it uses, in
one atomic request to the Prefect server (all or nothing, so two runs can never
each hold half of what the other needs), and gives them back after its devices
are exited. The slots are held under a lease that the run renews; a run that
crashes without releasing them loses them when the lease expires
(:data:`LEASE_SECONDS`, reclaimed by the server's repossessor service), or at
once when the next run on the same host finds that the holder's process is dead.

While a run holds a device, the Prefect Variable ``shotflow_device_holder_<name>``
names it, so a run that finds the device busy can say by whom.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import anyio
import httpx
from prefect import get_client
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.variables import Variable

from ._errors import DeviceBusyError

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
HOLDER_PREFIX = "shotflow_device_holder_"
"""Prefix of the Prefect Variable naming the run that holds a device."""
LEASE_SECONDS = 60.0
"""Lease of the held slots (the server's minimum); renewed every :data:`RENEW_INTERVAL` s."""
RENEW_INTERVAL = 20.0
"""Seconds between two lease renewals while a run holds its devices."""
POLL_INTERVAL = 1.0
"""Longest wait between two attempts to take busy devices (the server may suggest shorter)."""
RELEASE_TIMEOUT = 10.0
"""Seconds allowed to give the devices back (shielded from cancellation)."""


def device_limit_name(device: str) -> str:
    """The global concurrency limit that guards ``device``."""
    return LIMIT_PREFIX + device


def _holder_variable(device: str) -> str:
    return HOLDER_PREFIX + re.sub(r"[^a-z0-9_]", "_", device.lower())


async def _ensure_limits(client: PrefectClient, devices: list[str]) -> None:
    for device in devices:
        name = device_limit_name(device)
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )
                logger.info("created the concurrency limit %s", name)
            except ObjectAlreadyExists:
                pass  # another run created it at the same time


async def device_busy_report(devices: Iterable[str]) -> dict[str, str]:
    """Which of ``devices`` are held right now, each with a description of its holder (best effort)."""
    busy: dict[str, str] = {}
    async with get_client() as client:
        for device in sorted(set(devices)):
            try:
                limit = await client.read_global_concurrency_limit_by_name(
                    device_limit_name(device)
                )
            except ObjectNotFound:
                continue
            if limit.active_slots < limit.limit:
                continue
            holder = await Variable.aget(_holder_variable(device), default=None)
            if isinstance(holder, dict) and holder.get("flow_run"):
                busy[device] = (
                    f"held by flow run {holder.get('flow_run_name') or '?'!r} ({holder['flow_run']}) "
                    f"since {holder.get('since', '?')}"
                )
            else:
                busy[device] = "held by another run"
    return busy


def _busy_message(busy: dict[str, str], fallback: list[str], why: str) -> str:
    if not busy:
        return f"{why}: devices {', '.join(fallback)} are in use by another run"
    return (
        why
        + ": "
        + "; ".join(
            f"device {device!r} is busy ({who})" for device, who in busy.items()
        )
    )


async def _acquire(
    client: PrefectClient,
    names: list[str],
    devices: list[str],
    mode: Literal["wait", "fail"],
    timeout: float | None,
    holder: ConcurrencyLeaseHolder | None,
) -> UUID:
    deadline = None if timeout is None else time.monotonic() + timeout
    announced = False
    while True:
        try:
            response = await client.increment_concurrency_slots_with_lease(
                names=names,
                slots=1,
                mode="concurrency",
                lease_duration=LEASE_SECONDS,
                holder=holder,
            )
            return UUID(response.json()["lease_id"])
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:
                raise
            retry_after = float(exc.response.headers.get("Retry-After", POLL_INTERVAL))
        if await _revoke_dead_holders(client, devices):
            continue
        if mode == "fail":
            busy = await device_busy_report(devices)
            raise DeviceBusyError(
                _busy_message(busy, devices, "execution.device_lock is 'fail'"),
                tuple(busy or devices),
            )
        if deadline is not None and time.monotonic() >= deadline:
            busy = await device_busy_report(devices)
            raise DeviceBusyError(
                _busy_message(
                    busy,
                    devices,
                    f"gave up after execution.device_lock_timeout = {timeout} s",
                ),
                tuple(busy or devices),
            )
        if not announced:
            busy = await device_busy_report(devices)
            logger.warning("%s", _busy_message(busy, devices, "waiting for devices"))
            announced = True
        pause = min(retry_after, POLL_INTERVAL)
        if deadline is not None:
            pause = max(0.0, min(pause, deadline - time.monotonic()))
        await anyio.sleep(pause)


async def _keep_lease(lease_id: UUID) -> None:
    """Renew the lease every :data:`RENEW_INTERVAL` s until cancelled.

    Each renewal is shielded (an HTTP call is never cut half-way); a failed one
    is logged and retried: a server hiccup must not abort a running scan.
    """
    async with get_client() as client:
        while True:
            await anyio.sleep(RENEW_INTERVAL)
            try:
                with anyio.move_on_after(RENEW_INTERVAL, shield=True):
                    await client.renew_concurrency_lease(lease_id, lease_duration=LEASE_SECONDS)
            except Exception as exc:  # noqa: BLE001
                logger.warning("could not renew the device lease %s: %s", lease_id, exc)


def _process_is_dead(holder: dict[str, Any]) -> bool:
    """True when ``holder`` names a process of this host that no longer exists."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def _revoke_dead_holders(client: PrefectClient, devices: list[str]) -> bool:
    """Release the leases of busy devices whose holder process died on this host; True if any."""
    revoked = False
    for device in devices:
        holder = await Variable.aget(_holder_variable(device), default=None)
        if not isinstance(holder, dict) or not holder.get("lease_id") or not _process_is_dead(holder):
            continue
        try:
            await client.release_concurrency_slots_with_lease(UUID(holder["lease_id"]))
        except Exception as exc:  # noqa: BLE001 - the lease then expires on its own
            logger.debug("could not revoke the lease of %s: %s", device, exc)
            continue
        logger.warning(
            "device %s was held by process %s on this host, which died: its lock is released",
            device,
            holder.get("pid"),
        )
        revoked = True
    return revoked


async def _record_holders(devices: list[str], holder: dict[str, Any]) -> None:
    for device in devices:
        try:
            await Variable.aset(_holder_variable(device), holder, overwrite=True)
        except Exception as exc:  # noqa: BLE001 - only used to explain a busy device
            logger.debug("could not record the holder of %s: %s", device, exc)


@asynccontextmanager
async def device_lock(
    devices: Iterable[str],
    *,
    mode: Literal["wait", "fail"] = "wait",
    timeout: float | None = None,
) -> AsyncIterator[None]:
    """Hold every device in ``devices`` exclusively for the body of the ``async with``.

    Creates the devices' concurrency limits (1 slot) when missing, then takes
    all slots at once. When another run holds one: ``mode="wait"`` retries
    (about every :data:`POLL_INTERVAL` s, cancellable) until ``timeout``
    seconds have passed (None: no limit); ``mode="fail"`` raises at once.
    Raises :class:`DeviceBusyError` naming each busy device and its holder.
    The slots are released on every exit path, shielded from cancellation.
    """
    wanted = sorted(set(devices))
    if not wanted:
        yield
        return
    names = [device_limit_name(d) for d in wanted]
    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    lease_holder = (
        ConcurrencyLeaseHolder(type="flow_run", id=flow_run.id)
        if flow_run is not None
        else None
    )
    async with get_client() as client:
        await _ensure_limits(client, wanted)
        lease_id = await _acquire(client, names, wanted, mode, timeout, lease_holder)
    logger.info("holding devices %s (lease %s)", ", ".join(wanted), lease_id)
    try:
        async with anyio.create_task_group() as keeper:
            keeper.start_soon(_keep_lease, lease_id, name=f"renew lease {lease_id}")
            try:
                await _record_holders(
                    wanted,
                    {
                        "flow_run": str(flow_run.id) if flow_run is not None else None,
                        "flow_run_name": flow_run.name if flow_run is not None else None,
                        "since": datetime.now(UTC).isoformat(timespec="seconds"),
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "lease_id": str(lease_id),
                    },
                )
                yield
            finally:
                keeper.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the body's own error, as it was raised
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(RELEASE_TIMEOUT):
            try:
                async with get_client() as client:
                    await client.release_concurrency_slots_with_lease(lease_id)
                logger.info("released devices %s", ", ".join(wanted))
            except Exception as exc:  # noqa: BLE001 - the lease then expires on the server
                logger.warning(
                    "could not release devices %s (free again within %.0f s): %s",
                    ", ".join(wanted),
                    LEASE_SECONDS,
                    exc,
                )
