"""The shot rate at which the local Prefect server still records every task run, and batching.

Each case runs ``run_sequence`` on the embedded Prefect server (SQLite, started once) with
one light device (sim.rf_source, no settle time) and shots of a given nominal duration
(0 = zero-length shots, as fast as the engine goes). A run makes ``2 * ceil(shots / k)``
task runs (``compile-shots`` + ``execute-shots`` per batch of ``k = execution.shots_per_task``
shots). Right after the flow returns, the task runs the server has recorded for that flow
run are counted through the client (``read_task_runs`` filtered by the flow run id); then
again every half second until the count is exact (or ``--drain`` seconds pass).

- ``task runs/s``: task runs started by the client per second of the run;
- ``at end``: recorded when the flow returned / expected;
- ``catch-up s``: how long the server took afterwards to record the rest (0: it kept up);
- ``final``: recorded (completed) after catching up / expected; ``store``: completed shots in
  the store;
- ``server/s``: task runs the server recorded per second, from the first shot to caught up.

The server queues what it has not recorded yet in memory and drops events past 10,000
queued; the store is the source of truth either way. ``execution.shots_per_task`` keeps
the task-run rate under what the server records.

    python bench/prefect_task_rate.py [--durations 100,50,20,0] [--seconds 6]
                                      [--batched 10,100] [--drain 30]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import _common  # noqa: F401  (sets up the private Prefect home before Prefect is imported)
from _common import lab_spec, machine, read_store_times

from flows.run import run_sequence

PAGE = 200
"""Task runs per read_task_runs call (the server's maximum page)."""


async def count_task_runs(flow_run_id: UUID) -> tuple[int, int]:
    """``(recorded, completed)`` task runs of a flow run, as the server has them now."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    recorded = completed = 0
    async with get_client() as client:
        offset = 0
        while True:
            page = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=PAGE, offset=offset
            )
            recorded += len(page)
            completed += sum(1 for run in page if run.state is not None and run.state.is_completed())
            if len(page) < PAGE:
                return recorded, completed
            offset += PAGE


def run_case(root: Path, duration_ms: float, shots: int, per_task: int, drain: float) -> dict[str, Any]:
    """One sequence run and its task-run counts."""
    spec = lab_spec(
        name="rate",
        shots=shots,
        duration_ms=duration_ms,
        devices=("rf",),
        settle="0 s",
        execution={"shots_per_task": per_task, "lookahead": 4},
    )
    store = root / f"d{duration_ms:g}-k{per_task}.zarr"
    started = time.perf_counter()
    state = asyncio.run(run_sequence(spec, store=str(store), return_state=True))
    wall = time.perf_counter() - started
    if not state.is_completed():
        raise RuntimeError(f"run ended {state.type}: {state.message}")
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    status, starts, ends = read_store_times(store)
    expected = 2 * math.ceil(shots / per_task)
    at_end, _ = asyncio.run(count_task_runs(flow_run_id))
    ended = time.perf_counter()
    completed = 0
    while True:
        _, completed = asyncio.run(count_task_runs(flow_run_id))
        if completed >= expected or time.perf_counter() - ended > drain:
            break
        time.sleep(0.5)
    catch_up = time.perf_counter() - ended if at_end < expected else 0.0
    shutil.rmtree(store, ignore_errors=True)
    shot_seconds = float(ends[-1] - starts[0])
    return {
        "case": f"{duration_ms:g} ms x {shots}",
        "k": per_task,
        "shots_per_s": shots / shot_seconds,
        "runs_per_s": expected / shot_seconds,
        "expected": expected,
        "at_end": at_end,
        "catch_up": catch_up,
        "final": completed,
        "store": int((status == 1).sum()),
        "shots": shots,
        "wall": wall,
        "server_rate": completed / (shot_seconds + catch_up),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", default="100,50,20,0", help="shot durations in ms (k=1)")
    parser.add_argument("--seconds", type=float, default=6.0, help="approximate length of each run")
    parser.add_argument("--batched", default="10,100", help="shots_per_task values for the 0 ms case")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for the server to catch up")
    parser.add_argument("--fast-shots", type=int, default=600, help="shots of the 0 ms cases")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="shotflow-bench-"))
    rows: list[dict[str, Any]] = []
    try:
        run_case(root, 5, 3, 1, args.drain)  # starts the embedded server
        for d in (float(x) for x in args.durations.split(",")):
            shots = args.fast_shots if d == 0 else max(20, int(args.seconds / (d * 1e-3 + 0.015)))
            rows.append(run_case(root, d, shots, 1, args.drain))
        for k in (int(x) for x in args.batched.split(",") if x):
            rows.append(run_case(root, 0, max(args.fast_shots, 10 * k), k, args.drain))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"machine: {machine()}")
    header = (
        f"{'shots':<14} {'k':>4} {'shots/s':>8} {'task runs/s':>11} {'at end':>11} {'catch-up s':>10}"
        f" {'final':>11} {'store':>11} {'server/s':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['case']:<14} {r['k']:>4} {r['shots_per_s']:8.1f} {r['runs_per_s']:11.1f}"
            f" {r['at_end']:>5}/{r['expected']:<5} {r['catch_up']:10.1f}"
            f" {r['final']:>5}/{r['expected']:<5} {r['store']:>5}/{r['shots']:<5} {r['server_rate']:8.1f}"
        )


if __name__ == "__main__":
    main()
