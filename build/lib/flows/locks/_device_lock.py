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
running, is marked Crashed with the reason."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from typing import Literal
from uuid import UUID

import anyio
import httpx
from prefect import get_client
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.context import FlowRunContext
from prefect.variables import Variable

from tasks.records import raise_first

from ._holders import Holder, forget_holder, this_holder
from ._settings import (
    LEASE_SECONDS,
    RELEASE_TIMEOUT,
    RENEW_INTERVAL,
    device_limit_name,
    holder_variable,
    now_utc,
)
from ._takeover import acquire, ensure_limit, lease_known

logger = logging.getLogger(__name__)


class _Hold:
    """The slots held by one run: the lease, renewed with the holder records until released."""

    def __init__(self, devices: list[str], lease_id: UUID, holder: Holder) -> None:
        self.devices = devices
        self.lease_id = lease_id
        self.holder = holder
        self.lease_lost = False

    async def record(self) -> None:
        for device in self.devices:
            try:
                await Variable.aset(holder_variable(device), asdict(self.holder), overwrite=True)
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
        self.holder = replace(self.holder, renewed=now_utc().isoformat(timespec="seconds"))
        await self.record()

    async def release(self) -> None:
        """Delete the holder records, then give the slots back (in that order: see
        :func:`forget_holder`)."""
        await forget_holder(self.devices, self.holder)
        async with get_client() as client:
            if self.lease_lost or not await lease_known(client, str(self.lease_id)):
                # the server was restarted and forgot the lease: give the slots back by name
                await client.release_concurrency_slots(
                    names=[device_limit_name(d) for d in self.devices], slots=1, occupancy_seconds=1.0
                )
            else:
                await client.release_concurrency_slots_with_lease(self.lease_id)


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
            await ensure_limit(client, device_limit_name(device))
        lease_id = await acquire(client, wanted, mode, timeout, lease_holder, on_busy)
    hold = _Hold(wanted, lease_id, this_holder(lease_id))
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
        raise_first(group)
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
