"""Names and timings of the hardware locks."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

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


def holder_variable(device: str) -> str:
    return HOLDER_PREFIX + re.sub(r"[^a-z0-9_]", "_", device.lower())


def now_utc() -> datetime:
    return datetime.now(UTC)
