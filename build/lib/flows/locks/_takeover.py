"""Taking devices: all slots at once, waiting or failing fast, and taking over a dead holder's."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Literal
from uuid import UUID

import anyio
import httpx
from prefect import get_client
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.states import Crashed

from flows._errors import DeviceBusyError

from ._holders import Holder, forget_holder, held_by, read_holder, why_dead
from ._settings import (
    FINAL_STATES,
    LEASE_SECONDS,
    MIN_PAUSE,
    POLL_INTERVAL,
    TAKEOVER_GUARD_SECONDS,
    TAKEOVER_PREFIX,
    device_limit_name,
)

logger = logging.getLogger(__name__)


async def ensure_limit(client: PrefectClient, name: str, **settings: Any) -> None:
    try:
        await client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        try:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1, **settings))
            logger.debug("created the concurrency limit %s", name)
        except ObjectAlreadyExists:
            pass  # another run created it at the same time


async def guard_takeover(client: PrefectClient, device: str) -> bool:
    """Take the device's takeover guard; False if another process is taking it over."""
    name = TAKEOVER_PREFIX + device
    await ensure_limit(client, name, slot_decay_per_second=1.0 / TAKEOVER_GUARD_SECONDS)
    try:
        await client.increment_concurrency_slots(names=[name], slots=1, mode="rate_limit")
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 423:
            return False
        raise
    return True


async def release_guard(client: PrefectClient, device: str) -> None:
    """Give the takeover guard back (it also decays by itself if this process dies first)."""
    with anyio.CancelScope(shield=True):
        await client.release_concurrency_slots(names=[TAKEOVER_PREFIX + device], slots=1, occupancy_seconds=0.1)


async def mark_crashed(client: PrefectClient, holder: Holder, reason: str) -> None:
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


async def lease_known(client: PrefectClient, lease_id: str) -> bool:
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


async def free_slots(client: PrefectClient, devices: list[str], holder: Holder | None) -> None:
    """Give back the slots of a dead holder on ``devices``: through its lease when the server
    knows it (exactly its slots, and the lease is revoked, so it never expires onto a new
    holder), otherwise by setting each device's active slots back to zero (nobody else can
    hold a full limit)."""
    if holder is not None and await lease_known(client, holder.lease_id):
        await client.release_concurrency_slots_with_lease(UUID(holder.lease_id))
        return
    for device in devices:
        await client.update_global_concurrency_limit(
            device_limit_name(device), GlobalConcurrencyLimitUpdate(active_slots=0)
        )


class Unrecorded:
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


async def take_over_dead(client: PrefectClient, devices: list[str], unrecorded: Unrecorded) -> list[str]:
    """Free the busy devices whose holder is dead; returns the devices freed."""
    freed: list[str] = []
    for device in devices:
        if device in freed:
            continue
        limit = await client.read_global_concurrency_limit_by_name(device_limit_name(device))
        if limit.active_slots < limit.limit:
            unrecorded.forget(device)
            continue
        holder = await read_holder(device)
        reason = await why_dead(client, holder, unrecorded.seen(device, holder is not None))
        if reason is None or not await guard_takeover(client, device):
            continue
        try:
            if await read_holder(device) != holder:  # someone took it meanwhile: not ours to reset
                continue
            held = [device] if holder is None else await held_by(devices, holder)
            if holder is not None:
                await forget_holder(held, holder)
            await free_slots(client, held, holder)
        finally:
            await release_guard(client, device)
        for taken in held:
            unrecorded.forget(taken)
        who = holder.describe() if holder is not None else "held by an unknown run"
        logger.warning("device %s was %s; %s: it is taken over", ", ".join(held), who, reason)
        if holder is not None:
            await mark_crashed(client, holder, reason)
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
            holder = await read_holder(device)
            busy[device] = holder.describe() if holder is not None else "held by another run"
    return busy


def busy_message(busy: dict[str, str], fallback: list[str], why: str) -> str:
    if not busy:
        return f"{why}: devices {', '.join(fallback)} are in use by another run"
    return why + ": " + "; ".join(f"device {device!r} is busy ({who})" for device, who in busy.items())


async def acquire(
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
    unrecorded = Unrecorded()
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
        if await take_over_dead(client, devices, unrecorded):
            await anyio.sleep(MIN_PAUSE)
            continue
        if mode == "fail":
            busy = await device_busy_report(devices)
            raise DeviceBusyError(
                busy_message(busy, devices, "execution.device_lock is 'fail'"), tuple(busy or devices)
            )
        if timeout is not None and waited >= timeout:
            busy = await device_busy_report(devices)
            raise DeviceBusyError(
                busy_message(busy, devices, f"gave up after execution.device_lock_timeout = {timeout:g} s"),
                tuple(busy or devices),
            )
        if not announced:
            busy = await device_busy_report(devices)
            message = busy_message(busy, devices, "waiting for devices")
            logger.warning("%s", message)
            if on_busy is not None:
                on_busy(message)
            announced = True
        pause = max(MIN_PAUSE, min(retry_after, POLL_INTERVAL))
        if timeout is not None:
            pause = min(pause, max(MIN_PAUSE, timeout - waited))
        await anyio.sleep(pause)
