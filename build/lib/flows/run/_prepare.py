"""What a run checks and computes before any instrument is touched: store path, calibrated values, compilers."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devices import DeviceCompiler, DeviceNotUsed, get_device_type
from flows._errors import SpecError
from flows.sequence import (
    SequenceRuntime,
    SequenceSpec,
    calibrated_references,
    count_shots,
    iter_shots,
    parameter_units,
)
from tasks.store import INDEX_PREFIX, load_values, open_sequence, store_state

from ._calibrated import load_calibrated
from ._store_path import resolve_store_path

__all__ = ["RESULTS_ROOT_ENV", "Plan", "check_resume", "prepare"]

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


def check_resume(spec: SequenceSpec, store: str | Path, calibrated: Mapping[str, str] | None = None) -> None:
    """Raise SpecError (naming the store) unless ``spec`` is consistent with the shots ``store`` holds.

    ``spec`` is the store's own spec, validated like any other (``load_spec``); an edited
    ``spec`` attribute must still describe the stored shots: the same shot count as recorded,
    no more completed shots than it makes, the same parameters and units, and for every
    completed shot the parameters the spec derives for it equal to the stored ones. Without
    ``calibrated`` values a spec that references calibrations is not re-derived here (the run
    checks again with them). Raises StoreError if the store cannot be read.
    """
    where = f"cannot resume {store}"
    attrs = store_state(store)
    known_calibration = calibrated is not None or not calibrated_references(spec)
    if not known_calibration:
        return
    expected = count_shots(spec, calibrated=calibrated)
    if attrs.get("expected_shots") != expected:
        raise SpecError(
            f"{where}: its spec makes {expected} shots but the store was created for {attrs.get('expected_shots')}"
        )
    ds = open_sequence(store)
    completed = [int(i) for i in load_values(store, ds, "shot")]
    if expected is not None and (len(completed) > expected or any(i >= expected for i in completed)):
        raise SpecError(f"{where}: it holds {len(completed)} completed shots, more than the {expected} its spec makes")
    units = parameter_units(spec, calibrated=calibrated)
    stored_units = attrs.get("parameter_units") or {}
    if stored_units != units:
        raise SpecError(f"{where}: its spec's parameters and units {units} differ from the stored {stored_units}")
    _check_stored_parameters(where, spec, calibrated, ds, completed, store)


def _check_stored_parameters(
    where: str,
    spec: SequenceSpec,
    calibrated: Mapping[str, str] | None,
    ds: object,
    completed: list[int],
    store: object,
) -> None:
    """Every completed shot's parameters and loop indices, derived again from ``spec``, equal the stored
    ones (a store written before shots recorded their indices is checked on its parameters)."""
    if not completed:
        return
    # the per-shot coordinates: parameters and loop indices (not the data's own x, y, time)
    names = [str(n) for n, c in ds.coords.items() if c.dims == ("shot",) and str(n) != "shot"]  # type: ignore[attr-defined]
    stored = {name: load_values(store, ds, name) for name in names}  # type: ignore[arg-type]
    rows = {index: row for row, index in enumerate(completed)}
    last = max(completed)
    for shot in iter_shots(spec, calibrated=calibrated):
        if shot.index > last:
            break
        row = rows.get(shot.index)
        if row is None:
            continue
        indices = {f"{INDEX_PREFIX}{axis}": position for axis, position in shot.indices.items()}
        values = {**shot.parameters, **{n: p for n, p in indices.items() if n in stored}}
        for name in {*names, *values}:
            value = values.get(name, 0 if name.startswith(INDEX_PREFIX) else None)  # an index's fill is 0
            if name not in stored:
                raise SpecError(f"{where}: its spec sets parameter {name!r}, which the stored shots do not have")
            kept = stored[name][row]
            same = (value is None and _is_missing(kept)) or (
                value is not None and bool(np.isclose(float(kept), float(value), rtol=1e-9, atol=0.0, equal_nan=False))
            )
            if not same:
                raise SpecError(
                    f"{where}: shot {shot.index} was stored with {name} = {kept!r}, but its spec gives {value!r}; "
                    "the spec no longer describes the stored shots"
                )


def _is_missing(value: object) -> bool:
    """What the store holds for a parameter a shot did not set: NaN (numbers) or False (bools)."""
    if isinstance(value, bool | np.bool_):
        return not value
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


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
