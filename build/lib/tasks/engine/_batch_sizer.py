"""How many shots each Prefect task run carries when ``execution.shots_per_task`` is ``auto``.

Every batch of shots costs two task runs (``compile-shots`` and ``execute-shots``), and the
local Prefect server records only so many task runs per second before it lags behind (it
then queues them in memory, and drops them past 10,000 queued). Each one also costs the
server CPU, on the same few cores as the shots: at 14 task runs/s the server of a 2-core
machine slowed 5 ms shots by 1-2 ms each, during the run and for seconds after it. The rule:

    size = 1                                                    if mean cycle >= SLOW_CYCLE
    size = clamp(ceil(TARGET_BATCH_INTERVAL / mean cycle), 1, MAX_AUTO_BATCH)   otherwise

where the mean shot cycle is measured over the last ``window`` shots (start-to-start time on
a monotonic clock: the shot, its set-up and every overhead between shots), and a batch is at
most ``growth`` times the previous one, so the size follows a change of shot length within a
few batches (down at once, up 4x per batch at most). The first batch holds one shot: nothing is
measured yet. Slow shots (the cold-atom cycle of 0.5 s and more) keep one task run per shot;
faster ones share task runs of about a second (at most 2 task runs/s); zero-length shots
reach ``MAX_AUTO_BATCH``.

Batching changes nothing in the results: the shots run in the same order, the store holds the
same data, and a compile error stops the run after the same shots (see :class:`ShotPipeline`).
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["MAX_AUTO_BATCH", "SERVER_TASK_RUN_RATE", "SLOW_CYCLE", "TARGET_BATCH_INTERVAL", "BatchSizer"]

SERVER_TASK_RUN_RATE = 10.0
"""Task runs per second the default local Prefect server (SQLite) records without lagging.

Measured with ``bench/prefect_task_rate.py`` (Prefect 3.9.1, 2 shared cores, Linux): the server
recorded 10.8-15.9 task runs/s, and kept up only when the client made about 15/s or fewer;
10/s leaves a margin for a loaded machine and for the flow's own API calls.
"""

TARGET_BATCH_INTERVAL = 1.0
"""Shortest time (s) one batch should last: two task runs (compile, execute) a second, a fifth of
:data:`SERVER_TASK_RUN_RATE`, so the server's CPU stays off the shots' cores."""

SLOW_CYCLE = 0.5
"""A shot cycle (s) from which every shot keeps its own task runs (the typical cold-atom cycle)."""

MAX_AUTO_BATCH = 1000
"""Most shots in one automatic batch (zero-length shots, ~1.5 ms a cycle, stay under 2 task runs/s)."""


class BatchSizer:
    """Sizes the next batch from the measured shot cycles (see the module docstring).

    Pure: fed durations in seconds through :meth:`record`, it reads no clock.
    """

    def __init__(
        self,
        target_interval: float = TARGET_BATCH_INTERVAL,
        *,
        slow_cycle: float = SLOW_CYCLE,
        max_size: int = MAX_AUTO_BATCH,
        growth: float = 4.0,
        window: int = 20,
    ) -> None:
        if target_interval <= 0 or slow_cycle <= 0 or max_size < 1 or growth < 1 or window < 1:
            raise ValueError(
                "BatchSizer needs target_interval > 0, slow_cycle > 0, max_size >= 1, growth >= 1, window >= 1"
            )
        self._target = target_interval
        self._slow = slow_cycle
        self._max = max_size
        self._growth = growth
        self._durations: deque[float] = deque(maxlen=window)
        self._last = 0

    def record(self, duration: float) -> None:
        """Record one shot's cycle time (s); negative values count as zero."""
        self._durations.append(max(duration, 0.0))

    @property
    def mean(self) -> float | None:
        """The mean cycle of the recorded window (s), or None before the first."""
        return sum(self._durations) / len(self._durations) if self._durations else None

    def next_size(self) -> int:
        """The size of the batch about to be formed: 1 the first time and for slow shots, then the rule,
        growing by ``growth`` at most."""
        mean = self.mean
        if mean is None or mean >= self._slow:
            wanted = 1
        elif mean <= 0:
            wanted = self._max
        else:
            wanted = math.ceil(self._target / mean)
        ceiling = math.ceil(self._last * self._growth) if self._last else 1
        size = max(1, min(wanted, self._max, ceiling))
        self._last = size
        return size
