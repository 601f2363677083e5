"""Overhead per shot of the default settings, against a plain anyio loop on the same devices.

For each shot duration T and device count K, in one process and one run:

- **baseline**: the plain anyio loop of ``engine_duty_cycle.py`` (same devices, compiled
  ahead, no Prefect, no store);
- **k=1**: ``run_sequence`` with ``execution.shots_per_task: 1`` (the former default);
- **auto**: ``run_sequence`` with the default settings (``shots_per_task: auto``).

Devices: K = 3 is sim.sequencer, sim.camera, sim.rf_source (0.1 ms settle on every shot);
K = 10 adds sim.scope and six more RF sources. Zero-length shots (T = 0) have no camera or
scope or sequencer (they need timeline steps): K RF sources.

- ``ms/shot``: wall time from the first shot's start to the last one's end, per shot
  (store times for the engine), the sizer's ramp-up (batches of 1, 2, 4...) included;
- ``overhead``: engine ms/shot - baseline ms/shot (targets: <= 1 ms);
- ``rate``: engine shots/s, and ``vs base``: engine / baseline shot rate (targets: >= 0.95
  at T >= 5 ms; >= 500 shots/s at T = 0);
- ``task runs/s``: task runs the server recorded for that flow run, per second of shots.

The shot counts are the issue's (1000 zero-length shots, else 200; ``--seconds`` for about that
much shot time instead); read ratios, not absolute times, and repeat (``--repeat``) for medians.

    python bench/overhead_defaults.py [--durations 0,5,20,100] [--devices 3,10] [--repeat 1]
                                      [--seconds S] [--variants 1,auto]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (sets up the private Prefect home before Prefect is imported)
from _common import lab_spec, machine, median, read_store_times
from engine_duty_cycle import run_baseline
from prefect_task_rate import count_task_runs

from flows.run import run_sequence

TARGET_OVERHEAD_MS = 1.0
TARGET_RATIO = 0.95
TARGET_FAST_RATE = 500.0


def devices_for(k: int, duration_ms: float) -> tuple[str, ...]:
    """The K devices of a case (see the module docstring)."""
    if duration_ms <= 0:
        return ("rf", *(f"rf{i}" for i in range(2, k + 1)))
    if k <= 3:
        return ("sequencer", "camera", "rf")[:k]
    return ("sequencer", "camera", "rf", "scope", *(f"rf{i}" for i in range(2, k - 2)))


def shots_for(duration_ms: float, seconds: float | None) -> int:
    """The issue's workload (1000 zero-length shots, else 200), or about ``seconds`` of shots (at least 20)."""
    if seconds is None:
        return 1000 if duration_ms <= 0 else 200
    if duration_ms <= 0:
        return 600
    return max(20, int(seconds / (duration_ms * 1e-3 + 0.002)))


def run_engine(spec: Any, store: Path) -> tuple[float, float]:
    """``(ms per shot, task runs/s)`` of one run_sequence run."""
    state = asyncio.run(run_sequence(spec, store=str(store), return_state=True))
    if not state.is_completed():
        raise RuntimeError(f"engine run ended {state.type}: {state.message}")
    status, starts, ends = read_store_times(store)
    if not (status == 1).all():
        raise RuntimeError(f"{int((status != 1).sum())} shots not completed in the store")
    shutil.rmtree(store, ignore_errors=True)
    wall = float(ends[-1] - starts[0])
    recorded, _ = asyncio.run(count_task_runs(state.state_details.flow_run_id))
    return wall / len(starts) * 1e3, recorded / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", default="0,5,20,100", help="shot durations in ms")
    parser.add_argument("--devices", default="3,10", help="device counts K")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--seconds", type=float, default=None, help="approximate shot time of each run (default: 1000 or 200 shots)"
    )
    parser.add_argument("--variants", default="1,auto", help="engine variants: execution.shots_per_task")
    args = parser.parse_args()
    variants: list[int | str] = [v if v == "auto" else int(v) for v in args.variants.split(",")]

    root = Path(tempfile.mkdtemp(prefix="shotflow-bench-"))
    run_engine(lab_spec(name="warmup", shots=3, duration_ms=5), root / "warmup.zarr")  # starts the server
    rows: list[dict[str, Any]] = []
    try:
        for k in (int(x) for x in args.devices.split(",")):
            for duration in (float(x) for x in args.durations.split(",")):
                n = shots_for(duration, args.seconds)
                devices = devices_for(k, duration)
                results: dict[str, list[tuple[float, float]]] = {}
                for _ in range(args.repeat):
                    spec = lab_spec(name="overhead", shots=n, duration_ms=duration, devices=devices)
                    timing = run_baseline(spec)
                    results.setdefault("baseline", []).append((timing.summary(duration)["per_shot"], 0.0))
                    for variant in variants:
                        spec = lab_spec(
                            name="overhead",
                            shots=n,
                            duration_ms=duration,
                            devices=devices,
                            execution={"shots_per_task": variant},
                        )
                        results.setdefault(f"k={variant}", []).append(run_engine(spec, root / f"{k}-{duration}.zarr"))
                base = median([r[0] for r in results["baseline"]])
                for label, runs in results.items():
                    per_shot = median([r[0] for r in runs])
                    rows.append(
                        {
                            "case": f"K={k} {duration:g} ms x {n}",
                            "T": duration,
                            "run": label,
                            "per_shot": per_shot,
                            "overhead": per_shot - base,
                            "rate": 1e3 / per_shot,
                            "ratio": base / per_shot,
                            "task_rate": median([r[1] for r in runs]),
                        }
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"machine: {machine()}; nproc {os.cpu_count()}; load average {os.getloadavg()}")
    print(f"medians of {args.repeat} repeat(s); baseline: plain anyio loop, compiled ahead, no Prefect, no store")
    header = (
        f"{'case':<24} {'run':<9} {'ms/shot':>8} {'overhead':>9} {'shots/s':>8} {'vs base':>8}"
        f" {'task runs/s':>11}  targets"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        verdict = ""
        if r["run"] != "baseline":
            checks = [f"overhead {'ok' if r['overhead'] <= TARGET_OVERHEAD_MS else 'MISSED'}"]
            if r["T"] >= 5:
                checks.append(f"ratio {'ok' if r['ratio'] >= TARGET_RATIO else 'MISSED'}")
            else:
                checks.append(f"rate {'ok' if r['rate'] >= TARGET_FAST_RATE else 'MISSED'}")
            verdict = ", ".join(checks)
        task_rate = f"{r['task_rate']:11.1f}" if r["run"] != "baseline" else f"{'':>11}"
        print(
            f"{r['case']:<24} {r['run']:<9} {r['per_shot']:8.2f} {r['overhead']:9.2f} {r['rate']:8.1f}"
            f" {r['ratio']:8.3f} {task_rate}  {verdict}"
        )


if __name__ == "__main__":
    main()
