"""What a run returns (:class:`SequenceResult`) and the summary artifact it publishes."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from prefect.artifacts import acreate_markdown_artifact
from pydantic import BaseModel

__all__ = ["SUMMARY_TIMEOUT", "SequenceResult", "publish_summary"]

logger = logging.getLogger(__name__)

SUMMARY_TIMEOUT = 10.0
"""Seconds allowed for publishing the summary artifact."""


class SequenceResult(BaseModel):
    """What a sequence run returns: where its data is and how it ended."""

    store: str
    state: str
    completed_shots: int
    expected_shots: int | None
    error: dict[str, Any] | None = None


async def publish_summary(result: SequenceResult, duration: float) -> None:
    """Publish the run's summary as a markdown artifact; shielded, bounded, and never raises for Prefect's sake."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(SUMMARY_TIMEOUT):
        try:
            await acreate_markdown_artifact(
                _summary_markdown(result, duration), key="sequence-summary", description=f"sequence {result.store}"
            )
        except Exception as exc:  # noqa: BLE001 - the store, not Prefect, is the record
            logger.warning("could not publish the summary artifact: %s", exc)


def _summary_markdown(result: SequenceResult, duration: float) -> str:
    lines = [
        f"# Sequence {result.state}",
        "",
        "| | |",
        "|---|---|",
        f"| store | `{result.store}` |",
        f"| shots completed | {result.completed_shots} / {result.expected_shots or '?'} |",
        f"| duration | {duration:.1f} s |",
    ]
    if result.error:
        lines.append(f"| error | {result.error.get('message', '')} |")
    return "\n".join(lines) + "\n"
