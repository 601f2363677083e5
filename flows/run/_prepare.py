"""What a run checks and computes before any instrument is touched: store path, calibrated values, compilers."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from devices import DeviceCompiler, DeviceNotUsed, get_device_type
from flows.sequence import SequenceRuntime, SequenceSpec, count_shots

from ._calibrated import load_calibrated
from ._store_path import resolve_store_path

__all__ = ["RESULTS_ROOT_ENV", "Plan", "prepare"]

logger = logging.getLogger(__name__)

RESULTS_ROOT_ENV = "SHOTFLOW_RESULTS_ROOT"
"""When set (deployments, API runs), every store must lie inside this folder."""


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, computed before any instrument is touched."""

    spec: SequenceSpec
    store: Path
    results_root: Path | None
    """``$SHOTFLOW_RESULTS_ROOT`` (absolute) when set: the store must stay inside it when opened."""
    calibrated: dict[str, str]
    runtime: SequenceRuntime
    compilers: dict[str, DeviceCompiler]
    expected: int | None
    shot_timeout: float


async def prepare(spec: SequenceSpec, store: str | None) -> Plan:
    """Resolve the store path, load the calibrated values and build one compiler per device in use.

    Raises what :func:`resolve_store_path`, :func:`load_calibrated` and the device
    compilers raise; nothing has been touched then.
    """
    results_root = _results_root()
    store_path = resolve_store_path(spec, results_root=results_root, store=Path(store) if store else None)
    calibrated = await load_calibrated(spec)
    runtime = SequenceRuntime(spec, calibrated=calibrated)
    return Plan(
        spec=spec,
        store=store_path,
        results_root=results_root,
        calibrated=calibrated,
        runtime=runtime,
        compilers=_build_compilers(spec, runtime),
        expected=count_shots(spec, calibrated=calibrated),
        shot_timeout=runtime.evaluate(spec.execution.shot_timeout, unit="s"),
    )


def _results_root() -> Path | None:
    """``$SHOTFLOW_RESULTS_ROOT`` as an absolute path, or None when it is not set."""
    root = os.environ.get(RESULTS_ROOT_ENV)
    return Path(os.path.abspath(root)) if root else None


def _build_compilers(spec: SequenceSpec, runtime: SequenceRuntime) -> dict[str, DeviceCompiler]:
    compilers: dict[str, DeviceCompiler] = {}
    for name, config in spec.devices.items():
        device_type = get_device_type(config.type)
        try:
            compilers[name] = device_type.compiler(name, config, runtime)
        except DeviceNotUsed as reason:
            logger.info("device %s is not used by this sequence: %s", name, reason)
    return compilers
