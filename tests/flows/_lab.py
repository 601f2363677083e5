"""Spec builder for engine tests: the shared simulated lab (tests/simlab.py) with a larger
camera ROI, a scope trace, an RF settle time and 2 ms load steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simlab import events, read_journal
from simlab import lab_spec as _lab_spec

from flows.sequence import SequenceSpec

__all__ = ["events", "lab_spec", "read_journal"]


def lab_spec(
    *,
    shots: int = 6,
    faults: dict[str, dict[str, Any]] | None = None,
    journal: Path | None = None,
    execution: dict[str, Any] | None = None,
    pulse: str = "2 ms",
    devices: tuple[str, ...] = ("sequencer", "camera", "rf"),
    camera_lane: str = "camera",
) -> SequenceSpec:
    """A resonance scan of ``shots`` shots on the simulated lab; ``faults`` per device name."""
    return _lab_spec(
        shots=shots,
        faults=faults,
        journal=journal,
        execution=execution,
        pulse=pulse,
        devices=devices,
        name="lab-test",
        overrides={
            "camera": {"roi": [16, 16], "lane": camera_lane},
            "rf": {"settle_time": "0.5 ms"},
            "scope": {"samples": 100},
        },
    )
