"""Hardware locks: one Prefect concurrency limit per device, holder records, and takeover of a dead holder.

See :mod:`flows.locks._device_lock` for the rules a physicist can rely on.
"""

from ._device_lock import device_lock
from ._settings import LEASE_SECONDS, LIMIT_PREFIX, device_limit_name
from ._takeover import device_busy_report

__all__ = ["LEASE_SECONDS", "LIMIT_PREFIX", "device_busy_report", "device_limit_name", "device_lock"]
