"""The live plot: the spec's ``live_plot`` variable redrawn on the flow run's Artifacts tab as shots complete.

One markdown artifact per run holds the plot as an embedded PNG (as the calibration report
does); it is created at the first completed shot and updated in place, at most every
``live_plot.every`` seconds and only when shots completed since. The plot reads the store
from disk and is drawn in a worker thread: never on a shot's critical path. A plot that
cannot be drawn yet (no completed shot, the variable not yet written) waits for the next
round; any other failure is logged once and ends the live plot, never the run.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import anyio
from prefect import get_client
from prefect.artifacts import acreate_markdown_artifact
from prefect.client.schemas.actions import ArtifactUpdate

from flows.sequence import LivePlot
from tasks.store import StoreError, StoreQueryError, plot_store

__all__ = ["LivePlotter"]

logger = logging.getLogger(__name__)

HTTP_TIMEOUT = 10.0
"""Seconds one artifact upload may take."""


class LivePlotter:
    """Redraws ``setting.data`` of the store at ``store`` while a run adds shots (``completed()`` counts them)."""

    def __init__(self, setting: LivePlot, store: Path, completed: Callable[[], int]) -> None:
        self._setting = setting
        self._store = store
        self._completed = completed
        self._drawn = 0
        self._artifact: UUID | None = None
        self._stopped = not setting.data

    async def run(self) -> None:
        """Update every ``setting.every`` seconds until cancelled."""
        while not self._stopped:
            await anyio.sleep(self._setting.every)
            await self.update()

    async def update(self, *, final: bool = False) -> None:
        """Redraw and upload if shots completed since the last drawing (``final``: if any did); never raises."""
        count = self._completed()
        if self._stopped or count == 0 or (count == self._drawn and not final):
            return
        try:
            png = await anyio.to_thread.run_sync(self._render)
        except StoreQueryError as exc:  # shots completed, and none wrote this variable: a misnamed label
            self._give_up(exc)
            return
        except StoreError:  # nothing to draw yet (the shot counted is still on its way to the disk)
            return
        except Exception as exc:  # noqa: BLE001 - a view must never end the run
            self._give_up(exc)
            return
        markdown = self._markdown(png, count)
        try:
            with anyio.CancelScope(shield=True), anyio.fail_after(HTTP_TIMEOUT):
                if self._artifact is None:
                    self._artifact = await acreate_markdown_artifact(
                        markdown=markdown, description=f"Live plot of {self._setting.data}"
                    )
                else:
                    async with get_client() as client:
                        await client.update_artifact(self._artifact, ArtifactUpdate(data=markdown))
        except Exception as exc:  # noqa: BLE001 - a view must never end the run
            self._give_up(exc)
            return
        self._drawn = count

    def _render(self) -> tuple[bytes, str]:
        buffer = io.BytesIO()
        against = plot_store(self._store, self._setting.data, self._setting.against or None, buffer)
        return buffer.getvalue(), against

    def _markdown(self, rendered: tuple[bytes, str], count: int) -> str:
        png, against = rendered
        image = base64.b64encode(png).decode("ascii")
        return (
            f"### {self._setting.data} against {against}: {count} shots\n\n"
            f"![live plot of {self._setting.data}](data:image/png;base64,{image})\n"
        )

    def _give_up(self, exc: Exception) -> None:
        self._stopped = True
        logger.warning("the live plot of %s stops: %s: %s", self._setting.data, type(exc).__name__, exc)
