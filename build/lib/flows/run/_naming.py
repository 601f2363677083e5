"""What a flow run says it is in the Prefect UI: its name and its tags.

A run is named after its sequence and its start time (``resonance scan 2026-12-02 09:41:07``,
``... (resume)`` for a resume), and tagged ``sequence:<name>`` and ``device:<name>`` for
each device it uses, so runs can be told apart and filtered in the runs list.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

import yaml
from prefect import get_client
from prefect.context import FlowRunContext

from devices import Shot
from flows.sequence import SequenceSpec
from tasks.engine import describe_batch
from tasks.store import format_quantity

__all__ = ["BatchNames", "run_tags", "sequence_run_name", "tag_flow_run"]

logger = logging.getLogger(__name__)

TAG_LIMIT = 100
"""Longest tag kept (the UI's tag chips truncate long ones anyway)."""
NAME_PARAMETERS = 3
"""Scan parameters shown in a task run's name (the first ones the scan sets)."""


class BatchNames:
    """Names a batch's task runs after its shots and the first shot's parameters, with units:
    ``shot 12 · detuning -1.5 MHz``, ``shots 40-89 · from detuning 400 kHz, power 2 mW``."""

    def __init__(self, units: Mapping[str, str]) -> None:
        self._units = dict(units)

    def __call__(self, shot: Shot, size: int) -> str:
        shots = describe_batch(shot, size)
        shown = list(shot.parameters.items())[:NAME_PARAMETERS]
        if not shown:
            return shots
        values = ", ".join(f"{name} {format_quantity(value, self._units.get(name, ''), 4)}" for name, value in shown)
        return f"{shots} · {'from ' if size > 1 else ''}{values}"


def _spec_name(spec: object) -> str | None:
    if isinstance(spec, SequenceSpec):
        return spec.name
    if isinstance(spec, str):  # run-sequence-yaml's text: its name, if it parses
        try:
            spec = yaml.safe_load(spec)
        except yaml.YAMLError:
            return None
    if isinstance(spec, Mapping):
        name = spec.get("name")
        return name if isinstance(name, str) else None
    return None


def sequence_run_name() -> str:
    """The flow run's name: the sequence name and the local start time (Prefect's ``flow_run_name``)."""
    context = FlowRunContext.get()
    parameters = context.parameters if context is not None and context.parameters else {}
    name = _spec_name(parameters.get("spec", parameters.get("spec_yaml"))) or "sequence"
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
    resume = " (resume)" if parameters.get("resume") is True else ""
    return f"{name} {stamp}{resume}"


def run_tags(spec: SequenceSpec, devices: Iterable[str]) -> list[str]:
    """``sequence:<name>`` and one ``device:<name>`` per device used."""
    tags = [f"sequence:{spec.name}", *(f"device:{d}" for d in sorted(devices))]
    return [t[:TAG_LIMIT] for t in tags]


async def tag_flow_run(tags: list[str]) -> None:
    """Add ``tags`` to the current flow run (its own tags kept); a failure is logged, never raised."""
    context = FlowRunContext.get()
    flow_run = context.flow_run if context is not None else None
    if flow_run is None:
        return
    merged = sorted({*(flow_run.tags or ()), *tags})
    try:
        async with get_client() as client:
            await client.update_flow_run(flow_run.id, tags=merged)
    except Exception as exc:  # noqa: BLE001 - tags help the UI; the run goes on without them
        logger.warning("could not tag the flow run: %s", exc)
