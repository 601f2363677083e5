"""Holder records: who holds a device, whether that holder is dead, and forgetting it."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import anyio
import psutil
from prefect.client.orchestration import PrefectClient
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectNotFound
from prefect.variables import Variable

from ._settings import FINAL_STATES, LEASE_SECONDS, ORPHAN_SECONDS, holder_variable, now_utc

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
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
    def parse(cls, value: Any) -> Holder | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(**{k: value[k] for k in cls.__dataclass_fields__ if k in value})
        except TypeError:
            return None

    def describe(self) -> str:
        who = f"flow run {self.flow_run_name!r} ({self.flow_run})" if self.flow_run else "a run outside Prefect"
        return f"held by {who}, process {self.pid} on {self.host}, since {self.since}"


def process_is_gone(holder: Holder) -> bool:
    """True when ``holder``'s process was on this host and is no longer running."""
    if holder.host != socket.gethostname() or holder.pid == os.getpid():
        return False
    try:
        return abs(psutil.Process(holder.pid).create_time() - holder.pid_started) > 1.0  # pid reused
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


async def read_holder(device: str) -> Holder | None:
    return Holder.parse(await Variable.aget(holder_variable(device), default=None))


async def why_dead(client: PrefectClient, holder: Holder | None, unrecorded: float) -> str | None:
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
    if process_is_gone(holder):
        return f"its process {holder.pid} on this host is gone"
    if holder.flow_run:
        try:
            run = await client.read_flow_run(UUID(holder.flow_run))
        except (ObjectNotFound, ValueError):
            run = None
        if run is not None and run.state is not None and run.state.type.value in FINAL_STATES:
            return f"its flow run ended ({run.state.name})"
    try:
        silent = (now_utc() - datetime.fromisoformat(holder.renewed)).total_seconds()
    except ValueError:
        return None
    if silent > LEASE_SECONDS:
        return f"it has not renewed its hold for {silent:.0f} s"
    return None


async def held_by(devices: list[str], holder: Holder) -> list[str]:
    """The devices among ``devices`` whose record names ``holder``."""
    return [device for device in devices if await read_holder(device) == holder]


async def forget_holder(devices: list[str], holder: Holder) -> None:
    """Delete the records of ``holder`` on ``devices``: always before its slots are given back,
    so that a record never outlives the slot it describes.

    The records are read concurrently and deleted one after another: concurrent writes to the
    local SQLite server are refused as busy (503) and then retried after a back-off of seconds.
    """
    ours: dict[str, bool] = {}

    async def check(device: str) -> None:
        ours[device] = await read_holder(device) == holder

    async with anyio.create_task_group() as tg:
        for device in devices:
            tg.start_soon(check, device)
    for device in devices:
        if ours[device]:
            await Variable.aunset(holder_variable(device))


def this_holder(lease_id: UUID) -> Holder:
    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    now = now_utc().isoformat(timespec="seconds")
    return Holder(
        lease_id=str(lease_id),
        host=socket.gethostname(),
        pid=os.getpid(),
        pid_started=psutil.Process().create_time(),
        since=now,
        renewed=now,
        flow_run=str(flow_run.id) if flow_run is not None else None,
        flow_run_name=flow_run.name if flow_run is not None else None,
    )
