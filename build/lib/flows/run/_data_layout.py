"""What the store is told about each data label: the devices' declarations and the analyses' outputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devices import Coordinate, DataDeclaration
from devices.analyses import Analysis

__all__ = ["data_layout"]


def _coordinate(dim: str, coord: Coordinate) -> dict[str, Any]:
    entry: dict[str, Any] = {"units": coord.unit, "long_name": coord.long_name or dim}
    if coord.values is not None:
        return entry | {"values": list(coord.values)}
    return entry | {"start": coord.start, "step": coord.step}


def _declared(device: str, label: str, declaration: DataDeclaration) -> dict[str, Any]:
    return {
        "units": declaration.unit,
        "long_name": declaration.long_name or f"{device} {label}",
        "dims": list(declaration.dims),
        "coords": {dim: _coordinate(dim, c) for dim, c in declaration.coords.items()},
    }


def data_layout(
    declarations: Mapping[str, Mapping[str, DataDeclaration]], analyses: Mapping[str, Analysis]
) -> dict[str, dict[str, Any]]:
    """``{label: {"units", "long_name", "dims", "coords"}}`` for the store (see ``tasks.store``).

    ``declarations`` are each device's :meth:`~devices.DeviceCompiler.declare_data`; an analysis
    output declared without a unit (None) has the unit of the data it reads, when declared.
    """
    layout = {
        f"{device}.{label}": _declared(device, label, declaration)
        for device, labels in declarations.items()
        for label, declaration in labels.items()
    }
    for name, analysis in analyses.items():
        source = layout.get(analysis.data, {})
        for field, output in analysis.outputs().items():
            entry: dict[str, Any] = {"long_name": output.long_name or f"{name} {field}"}
            unit = output.unit if output.unit is not None else source.get("units")
            if unit is not None:
                entry["units"] = unit
            layout[f"analysis.{name}.{field}"] = entry
        layout[f"analysis.{name}.ok"] = {"long_name": f"whether {name} computed its outputs for the shot"}
    return layout
