"""Per-shot analyses, run between the shots and the store, off the shots' critical path.

A completed shot's record goes into a bounded buffer; a consumer runs the sequence's analyses
on it in a worker thread and stores the record with their outputs (``analysis.<name>.<field>``
and ``analysis.<name>.ok``). The shots go on meanwhile; only a full buffer (analyses slower than
the shots) holds the next record back, so memory stays bounded. A failing analysis records NaN
for that shot and ``ok`` False, and the error is logged (the first few per analysis); it never
stops the sequence. Every record handed over reaches the store, even when the run is cancelled:
the buffer is drained under a shield.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import numpy as np

from devices.analyses import Analysis
from tasks.records import ShotRecord, ShotStatus

__all__ = ["ANALYSIS_BUFFER", "LOGGED_FAILURES", "ShotAnalyser", "analysed"]

logger = logging.getLogger(__name__)

ANALYSIS_BUFFER = 16
"""Completed shots that may wait for their analyses before the next one is held back."""
LOGGED_FAILURES = 3
"""Failures logged per analysis; later ones are counted and summarised at the end."""

Store = Callable[[ShotRecord], Awaitable[None]]


@dataclasses.dataclass
class _Failure:
    analysis: str
    shot: int
    error: str


class ShotAnalyser:
    """The analyses of one sequence (name -> :class:`Analysis`), applied to shot records."""

    def __init__(self, analyses: Mapping[str, Analysis]) -> None:
        self.analyses = dict(analyses)
        self._outputs = {name: tuple(a.outputs()) for name, a in self.analyses.items()}
        self.failures: dict[str, int] = dict.fromkeys(self.analyses, 0)
        self.analysed = 0

    def labels(self) -> list[str]:
        """Every data label the analyses add to a completed record."""
        return [f"analysis.{n}.{f}" for n, fields in self._outputs.items() for f in (*fields, "ok")]

    def analyse(self, record: ShotRecord) -> tuple[ShotRecord, list[_Failure]]:
        """``record`` with the analyses' outputs added (completed shots only), and what failed. Blocking."""
        if record.status != ShotStatus.COMPLETED or not self.analyses:
            return record, []
        added: dict[str, Any] = {}
        failures = []
        for name, analysis in self.analyses.items():
            fields = self._outputs[name]
            try:
                values = self._compute(analysis, fields, record)
                ok = True
            except Exception as exc:  # noqa: BLE001 - an analysis failure is data (NaN), never the run's failure
                values, ok = dict.fromkeys(fields, math.nan), False
                failures.append(_Failure(name, record.index, f"{type(exc).__name__}: {exc}"))
            for field in fields:
                added[f"analysis.{name}.{field}"] = np.float64(values[field])
            added[f"analysis.{name}.ok"] = np.bool_(ok)
        return dataclasses.replace(record, data={**record.data, **added}), failures

    @staticmethod
    def _compute(analysis: Analysis, fields: tuple[str, ...], record: ShotRecord) -> Mapping[str, float]:
        try:
            value = record.data[analysis.data]
        except KeyError:
            known = ", ".join(sorted(record.data)) or "none"
            raise KeyError(f"the shot has no data {analysis.data!r} (its data: {known})") from None
        result = analysis.compute(np.asarray(value))
        missing = set(fields) - set(result)
        if missing:
            raise ValueError(f"returned no value for {', '.join(sorted(missing))}")
        return {field: float(result[field]) for field in fields}

    def record(self, failures: list[_Failure]) -> None:
        """Count ``failures`` and log the first :data:`LOGGED_FAILURES` of each analysis."""
        self.analysed += 1
        for failure in failures:
            self.failures[failure.analysis] += 1
            count = self.failures[failure.analysis]
            if count <= LOGGED_FAILURES:
                later = "; later failures of it are counted, not logged" if count == LOGGED_FAILURES else ""
                logger.warning(
                    "analysis %s failed on shot %d (values NaN): %s%s",
                    failure.analysis,
                    failure.shot,
                    failure.error,
                    later,
                )

    def summary(self) -> str | None:
        """One line on the analyses that failed on some shots, or None."""
        failed = {name: n for name, n in self.failures.items() if n}
        if not failed:
            return None
        parts = ", ".join(f"{name} on {n}" for name, n in failed.items())
        return f"analyses failed (values NaN, analysis.<name>.ok False): {parts} of {self.analysed} shots"


@asynccontextmanager
async def analysed(store: Store, analyser: ShotAnalyser, *, buffer: int = ANALYSIS_BUFFER) -> AsyncIterator[Store]:
    """A store callable that analyses each record (worker thread) before ``store`` keeps it.

    With no analyses it is ``store`` itself. On leaving (any way, cancellation included) every
    record already handed over is analysed and stored first; a failing ``store`` raises here.
    """
    if not analyser.analyses:
        yield store
        return
    send, receive = anyio.create_memory_object_stream[ShotRecord](buffer)

    async def drain() -> None:
        with anyio.CancelScope(shield=True):  # the shots already run are stored, even on a cancel
            async with receive:
                async for record in receive:
                    done, failures = await anyio.to_thread.run_sync(analyser.analyse, record)
                    analyser.record(failures)  # logged here, in the run's context, not in the thread
                    await store(done)

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain, name="analyses")
        async with send:
            yield send.send
    line = analyser.summary()
    if line:
        logger.warning("%s", line)
