"""Hardware locks: one Prefect concurrency limit per device, holder records, and takeover of a dead holder."""

from ._device_lock import device_busy_report, device_limit_name, device_lock

__all__ = [
    "device_busy_report",
    "device_limit_name",
    "device_lock",
]
