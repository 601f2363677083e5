"""How many shots each Prefect task run carries when ``execution.shots_per_task`` is ``auto``.

Every batch of shots costs two task runs (``compile-shots`` and ``execute-shots``), and the
local Prefect server records only so many task runs per second before it lags behind (it
then queues them in memory, and drops them past 10,000 queued). The rule:

    size = clamp(ceil(TARGET_BATCH_INTERVAL / mean shot cycle), 1, MAX_AUTO_BATCH)

where the mean shot cycle is measured over the last ``window`` shots (start-to-start time on
a monotonic clock: the shot, its set-up and every overhead between shots), and a batch is at
most ``growth`` times the previous one, so the size follows a change of shot length within a
few batches (down at once, up 4x per batch at most). The first batch holds one shot: nothing is
measured yet. Slow shots (the cold-atom cycle of 0.5 s and more) keep one task run per shot;
zero-length shots reach ``MAX_AUTO_BATCH``.

Batching changes nothing in the results: the shots run in the same order, the store holds the
same data, and a compile error stops the run after the same shots (see :class:`ShotPipeline`).
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["MAX_AUTO_BATCH", "SERVER_TASK_RUN_RATE", "TARGET_BATCH_INTERVAL", "BatchSizer"]

SERVER_TASK_RUN_RATE = 10.0
"""Task runs per second the default local Prefect server (SQLite) records without lagging.

Measured with ``bench/prefect_task_rate.py`` (Prefect 3.9.1, 2 shared cores, Linux): the server
recorded 10.8-15.9 task runs/s, and kept up only when the client made about 15/s or fewer;
10/s leaves a margin for a loaded machine and for the flow's own API calls.
"""

TARGET_BATCH_INTERVAL = 2 / SERVER_TASK_RUN_RATE
"""Shortest time (s) one batch should last: each batch makes two task runs (compile, execute)."""

MAX_AUTO_BATCH = 200
"""Most shots in one automatic batch: zero-length shots (~2 ms cycle) stay near the server's rate."""


class BatchSizer:
    """Sizes the next batch from the measured shot cycles (see the module docstring).

    Pure: fed durations in seconds through :meth:`record`, it reads no clock.
    """

    def __init__(
        self,
        target_interval: float = TARGET_BATCH_INTERVAL,
        *,
        max_size: int = MAX_AUTO_BATCH,
        growth: float = 4.0,
        window: int = 20,
    ) -> None:
        if target_interval <= 0 or max_size < 1 or growth < 1 or window < 1:
            raise ValueError("BatchSizer needs target_interval > 0, max_size >= 1, growth >= 1, window >= 1")
        self._target = target_interval
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
        """The size of the batch about to be formed: 1 the first time, then the rule, growing by ``growth`` at most."""
        mean = self.mean
        if mean is None:
            wanted = 1
        elif mean <= 0:
            wanted = self._max
        else:
            wanted = math.ceil(self._target / mean)
        ceiling = math.ceil(self._last * self._growth) if self._last else 1
        size = max(1, min(wanted, self._max, ceiling))
        self._last = size
        return size
