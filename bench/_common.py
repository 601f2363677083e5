"""Shared setup of the engine benchmarks: a private Prefect home, the simulated lab, machine info.

Import this module before anything that imports Prefect: it points ``PREFECT_HOME`` at a
temporary folder and turns telemetry off, so a benchmark starts Prefect's embedded
(ephemeral) server once, on a fresh SQLite database, and reports nothing anywhere.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

_HOME = tempfile.mkdtemp(prefix="shotflow-bench-prefect-")
os.environ["PREFECT_HOME"] = _HOME
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

__all__ = [
    "PREFECT_HOME",
    "lab_spec",
    "machine",
    "median",
    "read_store_times",
    "rss_mb",
]

PREFECT_HOME = _HOME


def machine() -> str:
    """One line: platform, CPU model, core count, Python and Prefect versions."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import prefect

    return (
        f"{platform.platform()}, {model}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Prefect {prefect.__version__}"
    )


def lab_spec(
    *,
    name: str,
    shots: int,
    duration_ms: float,
    devices: tuple[str, ...] = ("sequencer", "camera", "rf"),
    settle: str = "0.1 ms",
    execution: dict[str, Any] | None = None,
) -> Any:
    """A detuning scan of ``shots`` shots of ``duration_ms`` each on the simulated lab.

    sequencer (2 channels at 10 us), camera (16x16 ROI, one picture in the last millisecond),
    RF source (frequency follows the detuning, ``settle`` after each change). A zero duration
    gives zero-length shots (the camera is then left out: it needs its picture step). Names
    ``rf2``, ``rf3``... are more RF sources and ``scope`` a scope on the coil lane (10-device cases).
    """
    from flows.sequence import SequenceSpec

    all_devices: dict[str, dict[str, Any]] = {
        "sequencer": {"type": "sim.sequencer", "time_step": "10 us", "channels": ["mot", "coil"]},
        "camera": {
            "type": "sim.camera",
            "lane": "camera",
            "roi": [16, 16],
            "exposure": "0.5 ms",
            "detuning": "detuning",
            "resonance": "0.2 MHz",
            "linewidth": "1 MHz",
        },
        "rf": {"type": "sim.rf_source", "frequency": "80 MHz + detuning", "settle_time": settle},
    }
    if duration_ms > 0:
        timeline: dict[str, Any] = {
            "steps": [
                {"name": "load", "duration": f"{duration_ms - 0.5} ms"},
                {"name": "image", "duration": "0.5 ms"},
            ],
            "lanes": {
                "mot": {"kind": "digital", "values": [True, False]},
                "coil": {"kind": "analog", "unit": "A", "values": [{"ramp": {"start": "0 A", "stop": "2 A"}}, "0 A"]},
                "camera": {"kind": "camera", "values": [None, "atoms"]},
            },
        }
    else:
        timeline = {"steps": [], "lanes": {}}

    def config(device: str) -> dict[str, Any]:
        if device in all_devices:
            return all_devices[device]
        if device.startswith("rf"):  # more RF sources: rf2, rf3, ...
            return all_devices["rf"]
        if device == "scope":
            return {"type": "sim.scope", "samples": 50, "source_lane": "coil"}
        raise ValueError(f"no such bench device: {device}")

    spec: dict[str, Any] = {
        "name": name,
        "iteration": [
            {
                "linspace": {
                    "variable": "detuning",
                    "start": "-2 MHz",
                    "stop": "2 MHz",
                    "num": shots,
                    "steps": ["shot"],
                }
            }
        ],
        "timeline": timeline,
        "devices": {n: config(n) for n in devices},
        "execution": {"lookahead": 4, "shot_timeout": "10 s", **(execution or {})},
    }
    return SequenceSpec.model_validate(spec)


def read_store_times(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(status, start_time, end_time)`` of every shot of a store (unix seconds)."""
    import zarr

    group = zarr.open_group(str(path), mode="r")
    return group["status"][:], group["start_time"][:], group["end_time"][:]


def median(values: list[float]) -> float:
    """The median (nan for no values)."""
    return statistics.median(values) if values else float("nan")


def rss_mb() -> float:
    """This process's resident set size, in MB (from /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
