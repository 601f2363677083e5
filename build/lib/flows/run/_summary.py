"""What a run returns (:class:`SequenceResult`) and the summary artifact it publishes."""

from __future__ import annotations

import base64
import io
import logging
import os
import shlex
from pathlib import Path
from typing import Any

import anyio
from prefect.artifacts import acreate_markdown_artifact
from pydantic import BaseModel

from tasks.store import StoreError, open_sequence, plot_store, store_state

from ._prepare import RESULTS_ROOT_ENV

__all__ = ["SUMMARY_TIMEOUT", "SequenceResult", "interrupted_text", "publish_summary"]

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


def interrupted_text(name: str, by: str, stopped_at: int | None, result: SequenceResult) -> str:
    """The one line that says how an interrupted run ended: who stopped it, at which shot, what was
    kept where (relative to the results root) and the command that continues it."""
    at = f" at shot {stopped_at} of {result.expected_shots or '?'}" if stopped_at is not None else ""
    return (
        f"sequence {name} interrupted {by}{at}: {result.completed_shots} shots kept in "
        f"{_shown_path(result.store)}; continue it with: shotflow resume {shlex.quote(result.store)}"
    )


async def publish_summary(
    result: SequenceResult, duration: float, plot: tuple[str, str] = ("", ""), conclusion: str | None = None
) -> None:
    """Publish the run's summary as a markdown artifact; shielded, bounded, and never raises for Prefect's sake.

    ``plot`` is the variable and x axis of the final plot (empty: the first data label, against the
    scanned parameter); the plot is drawn from the store in a worker thread. ``conclusion`` (the
    :func:`interrupted_text` of an interrupted run) is shown under the title.
    """
    with anyio.CancelScope(shield=True), anyio.move_on_after(SUMMARY_TIMEOUT):
        try:
            image = await anyio.to_thread.run_sync(_final_plot, result.store, *plot)
            await acreate_markdown_artifact(
                _summary_markdown(result, duration, image, conclusion),
                key="sequence-summary",
                description=f"sequence {result.store}",
            )
        except Exception as exc:  # noqa: BLE001 - the store, not Prefect, is the record
            logger.warning("could not publish the summary artifact: %s", exc)


def _shown_path(store: str) -> str:
    """The store as the physicist finds it: relative to the results root when there is one."""
    root = os.environ.get(RESULTS_ROOT_ENV)
    if root:
        try:
            return str(Path(store).resolve().relative_to(Path(root).resolve()))
        except ValueError:
            pass
    return store


def _scan_lines(store: str) -> list[str]:
    """The scan's axes as recorded in the store (outer to inner), as a markdown table."""
    try:
        axes = store_state(store).get("axes") or []
    except (StoreError, OSError) as exc:
        logger.debug("no axes for the summary: %s", exc)
        return []
    if not axes:
        return []
    lines = ["", "## Scan (outer to inner)", "", "| axis | points | unit | values |", "|---|---|---|---|"]
    for axis in axes:
        size = axis.get("size")
        shuffled = " (shuffled)" if axis.get("shuffled") else ""
        lines.append(
            f"| {axis.get('name', '?')} | {size if size is not None else '?'}{shuffled} "
            f"| {axis.get('unit') or '-'} | {axis.get('description', '')} |"
        )
    return lines


def _final_plot(store: str, variable: str, against: str) -> list[str]:
    """Markdown lines of the final plot (an embedded PNG), or none when nothing can be plotted."""
    try:
        if not variable:
            labels = [name for name in open_sequence(store).data_vars if "." in str(name)]  # <device>.<label>
            if not labels:
                return []
            variable = str(labels[0])
        buffer = io.BytesIO()
        against = plot_store(store, variable, against or None, buffer)
    except (StoreError, OSError) as exc:  # no completed shot, a store gone: the summary says the rest
        logger.debug("no plot for the summary: %s", exc)
        return []
    image = base64.b64encode(buffer.getvalue()).decode("ascii")
    return ["", f"## {variable} against {against}", "", f"![{variable}](data:image/png;base64,{image})"]


def _summary_markdown(
    result: SequenceResult, duration: float, plot: list[str] | None = None, conclusion: str | None = None
) -> str:
    shown = _shown_path(result.store)
    lines = [f"# Sequence {result.state}", ""]
    if conclusion:
        lines += [conclusion, ""]
    lines += [
        "| | |",
        "|---|---|",
        f"| store | `{shown}` |",
        f"| shots completed | {result.completed_shots} / {result.expected_shots or '?'} |",
        f"| duration | {duration:.1f} s |",
    ]
    if result.error:
        lines.append(f"| error | {result.error.get('message', '')} |")
    lines += _scan_lines(result.store)
    lines += plot or []
    lines += ["", "Open it with:", "", "```", f"shotflow show {shlex.quote(result.store)}", "```"]
    if result.state == "interrupted":
        lines += ["", "Continue it with:", "", "```", f"shotflow resume {shlex.quote(result.store)}", "```"]
    return "\n".join(lines) + "\n"
