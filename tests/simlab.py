"""Test helpers shared by every suite: a small, fast simulated lab, journal checks, a runner.

Importable as ``simlab`` from any test folder (pytest puts ``tests/``, the folder of the
root conftest.py, on ``sys.path``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from flows.run import run_sequence
from flows.sequence import SequenceSpec

SHOTFLOW = str(Path(sys.executable).with_name("shotflow"))
"""The ``shotflow`` executable of this environment, as the README runs it."""

DEVICES: dict[str, dict[str, Any]] = {
    "sequencer": {"type": "sim.sequencer", "time_step": "10 us", "channels": ["mot", "coil"]},
    "camera": {
        "type": "sim.camera",
        "lane": "camera",
        "roi": [8, 8],
        "detuning": "detuning",
        "resonance": "0.2 MHz",
        "linewidth": "1 MHz",
    },
    "rf": {"type": "sim.rf_source", "frequency": "80 MHz + detuning", "settle_time": "0 s"},
    "scope": {"type": "sim.scope", "samples": 50, "source_lane": "coil"},
}


def lab_dict(
    *,
    shots: int = 5,
    faults: dict[str, dict[str, Any]] | None = None,
    journal: Path | None = None,
    execution: dict[str, Any] | None = None,
    pulse: str = "1 ms",
    devices: tuple[str, ...] = ("sequencer", "camera", "rf"),
    name: str = "reliability",
    overrides: dict[str, dict[str, Any]] | None = None,
    suffix: str = "",
) -> dict[str, Any]:
    """A resonance scan of ``shots`` shots on the simulated lab, as a plain mapping.

    ``suffix`` is appended to the device names (separate hardware locks for concurrent runs).
    """
    faults = faults or {}

    def device(name: str) -> dict[str, Any]:
        f = dict(faults.get(name, {}))
        if journal is not None:
            f["journal"] = str(journal)
        return {**DEVICES[name], **(overrides or {}).get(name, {}), "faults": f}

    return {
        "name": name,
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
        "devices": {n + suffix: device(n) for n in devices},
        "execution": {"lookahead": 2, "shot_timeout": "5 s", **(execution or {})},
    }


def lab_spec(**kwargs: Any) -> SequenceSpec:
    """:func:`lab_dict` validated as a :class:`SequenceSpec`."""
    return SequenceSpec.model_validate(lab_dict(**kwargs))


def run(spec: SequenceSpec, store: Path, **kwargs: Any) -> Any:
    """Run the flow to its final Prefect state (never raises for a failed run)."""
    return asyncio.run(run_sequence(spec, store=str(store), return_state=True, **kwargs))


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's events, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events(journal: list[dict[str, Any]], event: str, device: str | None = None) -> list[dict[str, Any]]:
    """The journal entries of one kind (and device)."""
    return [e for e in journal if e["event"] == event and (device is None or e["device"] == device)]


def assert_exited_exactly_once(journal: list[dict[str, Any]]) -> set[str]:
    """Every entered device was exited exactly once, after it was entered; return the entered set."""
    entered = [e["device"] for e in events(journal, "enter")]
    exited = [e["device"] for e in events(journal, "exit")]
    assert len(entered) == len(set(entered)), f"a device was entered twice: {entered}"
    assert sorted(entered) == sorted(exited), f"entered {sorted(entered)}, exited {sorted(exited)}"
    order = [(e["event"], e["device"]) for e in journal if e["event"] in ("enter", "exit")]
    for name in entered:
        assert order.index(("enter", name)) < order.index(("exit", name)), f"{name} exited before it was entered"
    return set(entered)


async def log_lines(flow_run_id: object) -> list[tuple[str, int]]:
    """(message, level) of every line of the flow run's log (what the UI's Logs tab shows), in order."""
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()
    async with get_client() as client:
        logs = await client.read_logs(
            LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), sort=LogSort.TIMESTAMP_ASC
        )
    return [(log.message, log.level) for log in logs]


async def summary_artifact(flow_run_id: object) -> str:
    """The flow run's ``sequence-summary`` artifact (markdown)."""
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    async with get_client() as client:
        (artifact,) = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["sequence-summary"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    return str(artifact.data)


def cancel_conclusion(lines: list[tuple[str, int]]) -> str:
    """Check that a cancelled run's log reads as a cancel (no ERROR, no crash, its final line at INFO,
    one INFO line with the resume command) and return that line."""
    text = "\n".join(message for message, _ in lines)
    assert [m for m, level in lines if level >= logging.ERROR] == [], text
    assert "Crash" not in text, text
    conclusions = [m for m, _ in lines if "shotflow resume" in m and not m.startswith("Finished in state")]
    assert len(conclusions) == 1, text
    (conclusion,) = conclusions
    assert dict(lines)[conclusion] == logging.INFO
    assert [level for m, level in lines if m.startswith("Finished in state Cancelled")] == [logging.INFO], text
    return conclusion
