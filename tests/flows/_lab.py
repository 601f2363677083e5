"""Spec builders for engine tests: a small simulated lab (sequencer, camera, RF source, scope)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flows import SequenceSpec


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
    faults = faults or {}

    def sim_faults(name: str) -> dict[str, Any]:
        f = dict(faults.get(name, {}))
        if journal is not None:
            f["journal"] = str(journal)
        return f

    all_devices: dict[str, dict[str, Any]] = {
        "sequencer": {"type": "sim.sequencer", "time_step": "10 us", "channels": ["mot", "coil"]},
        "camera": {
            "type": "sim.camera",
            "lane": camera_lane,
            "roi": [16, 16],
            "detuning": "detuning",
            "resonance": "0.2 MHz",
            "linewidth": "1 MHz",
        },
        "rf": {"type": "sim.rf_source", "frequency": "80 MHz + detuning", "settle_time": "0.5 ms"},
        "scope": {"type": "sim.scope", "samples": 100, "source_lane": "coil"},
    }
    spec: dict[str, Any] = {
        "name": "lab-test",
        "parameters": {"offset": "0 MHz"},
        "iteration": [
            {
                "linspace": {
                    "variable": "detuning",
                    "start": "-2 MHz + offset",
                    "stop": "2 MHz",
                    "num": shots,
                    "steps": ["shot"],
                }
            }
        ],
        "timeline": {
            "steps": [{"name": "load", "duration": pulse}, {"name": "image", "duration": "1 ms"}],
            "lanes": {
                "mot": {"kind": "digital", "values": [True, False]},
                "coil": {"kind": "analog", "unit": "A", "values": [{"ramp": {"start": "0 A", "stop": "2 A"}}, "0 A"]},
                "camera": {"kind": "camera", "values": [None, "atoms"]},
            },
        },
        "devices": {
            name: {**all_devices[name], "faults": sim_faults(name)} for name in devices
        },
        "execution": {"lookahead": 2, "shot_timeout": "5 s", **(execution or {})},
    }
    return SequenceSpec.model_validate(spec)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's events, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events(journal: list[dict[str, Any]], event: str, device: str | None = None) -> list[dict[str, Any]]:
    """The journal entries of one kind (and device)."""
    return [e for e in journal if e["event"] == event and (device is None or e["device"] == device)]
