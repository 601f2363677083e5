"""A picklable ``SequenceContext`` stand-in for the devices tests.

In its own uniquely named module (not in conftest.py) so that pickling finds
the class: several test folders have a conftest.py, and only one of them can be
the module named ``conftest``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from devices import AnalogLane, CameraLane, DigitalLane, Ramp, Shot, ShotTimeline

UNITS = {
    "m": 1.0,
    "um": 1e-6,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "ns": 1e-9,
    "Hz": 1.0,
    "kHz": 1e3,
    "MHz": 1e6,
    "GHz": 1e9,
}


@dataclass(frozen=True)
class FakeSequence:
    """A fixed timeline; evaluates variable names and ``"<number> [unit]"`` strings only."""

    fixed_timeline: ShotTimeline
    fixed_globals: Mapping[str, float] = field(default_factory=dict)
    sequence_name: str = "test"

    @property
    def name(self) -> str:
        return self.sequence_name

    @property
    def globals(self) -> Mapping[str, float]:
        return self.fixed_globals

    @property
    def lane_names(self) -> frozenset[str]:
        return frozenset(self.fixed_timeline.lanes)

    @property
    def camera_pictures(self) -> dict[str, tuple[str, ...]]:
        lanes = self.fixed_timeline.lanes.items()
        return {n: tuple(v for v in lane.values if v) for n, lane in lanes if isinstance(lane, CameraLane)}

    def evaluate(self, expression: str, shot: Shot | None = None, unit: str | None = None) -> Any:
        values = {**self.fixed_globals, **(shot.parameters if shot else {})}
        text = expression.strip()
        if text in values:
            value = float(values[text])
        else:
            number, _, suffix = text.partition(" ")
            try:
                value = float(number) * (UNITS[suffix] if suffix else 1.0)
            except (ValueError, KeyError):
                raise ValueError(f"cannot evaluate {expression!r}") from None
        return value / UNITS[unit] if unit else value

    def timeline(self, shot: Shot) -> ShotTimeline:
        return self.fixed_timeline


TIMELINE = ShotTimeline(
    step_names=("load", "ramp", "image", "background"),
    durations=(10e-3, 5e-3, 1e-3, 2e-3),
    lanes={
        "mot": DigitalLane((True, False, False, False)),
        "shutter": DigitalLane((False, True, True, False)),
        "coil": AnalogLane((1.0, Ramp(1.0, 0.0), 0.0, 0.0), unit="V"),
        "camera": CameraLane((None, None, "atoms", "background")),
    },
)
