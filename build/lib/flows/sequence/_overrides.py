"""Overrides: a spec's global parameters and device settings replaced by name, validated like the spec.

A key is a global parameter name (``center_frequency``, one of ``spec.parameters``) or a
device setting path ``devices.<device>.<field>[.<field>...]``; a value is the text a spec
file would hold there (``"80.2 MHz"``, ``"2 ms"``, ``"true"``). The result is a new spec,
validated whole, so the override is checked exactly as if it had been typed in the file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from flows._errors import SpecError

from ._load import format_validation_error
from ._spec import SequenceSpec

__all__ = ["DEVICE_PREFIX", "apply_overrides"]

logger = logging.getLogger(__name__)

DEVICE_PREFIX = "devices."
"""What starts the key of a device setting: ``devices.<device>.<field>``."""


def apply_overrides(spec: SequenceSpec, overrides: Mapping[str, str]) -> SequenceSpec:
    """``spec`` with each ``overrides`` key set to its expression text, validated as a whole.

    Raises :class:`SpecError` naming the key (``overrides['devices.camera.exposure']: ...``)
    when a key names no global parameter, device or device field, when a value is not text,
    or when the spec it makes does not validate (a wrong unit, an unparsable expression, a
    loop that no longer makes shots). Touches nothing; ``spec`` itself is not changed. With no
    overrides, returns ``spec`` itself.
    """
    if not overrides:
        return spec
    merged = spec.model_dump(mode="json")
    for key, value in overrides.items():
        where = f"overrides[{key!r}]"
        if not isinstance(key, str) or not isinstance(value, str):
            raise SpecError(f"{where}: an override is text mapped to text, got {type(value).__name__}")
        path = _locate(spec, key, where)
        alone = spec.model_dump(mode="json")
        _set(alone, path, value)
        _validate(alone, where)  # one override at a time, so that the error names its key
        _set(merged, path, value)
    return _validate(merged, "overrides")


def _validate(data: dict[str, Any], where: str) -> SequenceSpec:
    try:
        return SequenceSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"{where}: {format_validation_error(exc)}") from exc


def _set(data: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _locate(spec: SequenceSpec, key: str, where: str) -> tuple[str, ...]:
    """The path of ``key`` in the spec's mapping; raises SpecError if it names nothing that exists."""
    if not key.startswith(DEVICE_PREFIX):
        if key in spec.parameters:
            return ("parameters", key)
        known = ", ".join(sorted(spec.parameters)) or "none"
        raise SpecError(
            f"{where}: no global parameter {key!r} (the spec's parameters: {known}); "
            f"a device setting is written {DEVICE_PREFIX}<device>.<field>"
        )
    device, _, rest = key.removeprefix(DEVICE_PREFIX).partition(".")
    if device not in spec.devices:
        known = ", ".join(sorted(spec.devices)) or "none"
        raise SpecError(f"{where}: no device {device!r} (the spec's devices: {known})")
    if not rest:
        raise SpecError(f"{where}: name a setting of device {device!r}: {DEVICE_PREFIX}{device}.<field>")
    fields = tuple(rest.split("."))
    if fields[0] == "type":
        raise SpecError(f"{where}: a device's type cannot be overridden")
    node: Any = spec.devices[device]
    for depth, name in enumerate(fields):
        inside = DEVICE_PREFIX + ".".join((device, *fields[:depth]))
        if isinstance(node, BaseModel):
            if name not in type(node).model_fields:
                known = ", ".join(type(node).model_fields)
                raise SpecError(f"{where}: {inside} has no setting {name!r} (its settings: {known})")
            node = getattr(node, name)
        elif isinstance(node, Mapping) and name in node:
            node = node[name]
        else:
            raise SpecError(f"{where}: {inside} has no setting {name!r}")
    return ("devices", device, *fields)
