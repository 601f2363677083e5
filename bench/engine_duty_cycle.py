"""The per-shot critical path: gap between shots and duty cycle, run_sequence vs a plain anyio loop.

Devices: sim.sequencer (2 channels at 10 us), sim.camera (16x16 ROI), sim.rf_source (0.1 ms
settle on every shot: the frequency follows the scanned detuning).

- **baseline**: a plain anyio loop (no Prefect, no store) that enters the same devices,
  compiles every shot *ahead* (before the timed loop) with the same compilers, then runs
  the same controllers through ``devices.ShotExchange`` in a task group, back to back;
- **engine**: the ``run_sequence`` flow on Prefect's embedded server (started once, on a
  temporary PREFECT_HOME), writing a zarr store in a temporary folder.

A shot's *span* runs from just before its controllers start to just after the last one
returns: the engine records these times (``ShotRunner``, ``time.time()``) as each shot's
``start_time``/``end_time`` in the store; the baseline takes them at the same points. A span
is the nominal duration plus the devices' set-up (upload, settle, arm: ~1.5 ms here) plus any
delay of the event loop before the trigger: work that slows the loop lengthens spans, not
gaps, so both are reported.

- ``gap``: start of shot n+1 - end of shot n (store times), median and p95;
- ``cycle``: median start-to-start time (robust to the outliers of a shared machine);
- ``ms/shot``: wall time from the first start to the last end, per shot (the mean cycle);
- ``duty``: sum of spans / that wall time (the issue's definition, store times);
- ``play``: nominal duration / median cycle: the fraction of time the experiment plays;
- ``vs base``: play duty / the baseline's play duty (= baseline cycle / engine cycle).

Each case runs ``--repeat`` times, baseline and engine alternating; medians of the repeats.

    python bench/engine_duty_cycle.py [--durations 100,20,5] [--shots 30,150,200] [--repeat 2]
                                      [--shots-per-task 1,10]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (sets up the private Prefect home before Prefect is imported)
import anyio
import numpy as np
from _common import lab_spec, machine, median, read_store_times

from devices import ShotExchange, get_device_type
from flows.run import run_sequence
from flows.sequence import SequenceRuntime, iter_shots


@dataclass
class Timing:
    """Shot spans of one run."""

    starts: np.ndarray
    ends: np.ndarray

    @property
    def gaps_ms(self) -> np.ndarray:
        return (self.starts[1:] - self.ends[:-1]) * 1e3

    @property
    def duty(self) -> float:
        return float((self.ends - self.starts).sum() / (self.ends[-1] - self.starts[0]))

    def summary(self, nominal_ms: float) -> dict[str, float]:
        gaps = self.gaps_ms
        wall = float(self.ends[-1] - self.starts[0])
        return {
            "gap_median": float(np.median(gaps)),
            "gap_p95": float(np.percentile(gaps, 95)),
            "span": float(np.median(self.ends - self.starts) * 1e3),
            "cycle": float(np.median(np.diff(self.starts)) * 1e3),
            "per_shot": wall / len(self.starts) * 1e3,
            "duty": self.duty,
            "play_duty": nominal_ms / float(np.median(np.diff(self.starts)) * 1e3),
        }


def run_baseline(spec: Any) -> Timing:
    """The plain anyio loop (see the module docstring)."""
    runtime = SequenceRuntime(spec)
    types = {name: get_device_type(config.type) for name, config in spec.devices.items()}
    compilers = {name: types[name].compiler(name, spec.devices[name], runtime) for name in types}
    shots = list(iter_shots(spec))
    compiled = [{n: c.compile_shot_parameters(shot) for n, c in compilers.items()} for shot in shots]
    names = list(compilers)

    async def loop() -> Timing:
        with ExitStack() as stack:
            devices = {
                n: stack.enter_context(types[n].device(**compilers[n].compile_initialization_parameters()))
                for n in names
            }
            controllers = {n: types[n].controller() for n in names}
            starts, ends = np.empty(len(shots)), np.empty(len(shots))
            for i, (shot, instructions) in enumerate(zip(shots, compiled)):
                starts[i] = time.time()
                exchange = ShotExchange(shot.index, shot.parameters, names)
                async with anyio.create_task_group() as tg:
                    for n in names:
                        tg.start_soon(exchange.run, n, controllers[n], devices[n], instructions[n])
                ends[i] = time.time()
                exchange.data  # noqa: B018  (collected, as the engine does)
            return Timing(starts, ends)

    return anyio.run(loop)


def run_engine(spec: Any, root: Path, tag: str) -> Timing:
    """The run_sequence flow writing a store under ``root``; spans read back from the store."""
    store = root / f"{tag}.zarr"
    state = asyncio.run(run_sequence(spec, store=str(store), return_state=True))
    if not state.is_completed():
        raise RuntimeError(f"engine run {tag} ended {state.type}: {state.message}")
    status, starts, ends = read_store_times(store)
    if not (status == 1).all():
        raise RuntimeError(f"engine run {tag}: {int((status != 1).sum())} shots not completed in the store")
    shutil.rmtree(store, ignore_errors=True)
    return Timing(starts, ends)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", default="100,20,5", help="shot durations in ms")
    parser.add_argument("--shots", default="30,150,200", help="shots per run, one per duration")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--shots-per-task", default="1,10", help="engine variants: execution.shots_per_task")
    args = parser.parse_args()
    durations = [float(d) for d in args.durations.split(",")]
    counts = [int(n) for n in args.shots.split(",")]
    if len(counts) == 1:
        counts *= len(durations)
    per_task = [int(k) for k in args.shots_per_task.split(",")]

    root = Path(tempfile.mkdtemp(prefix="shotflow-bench-"))
    # a first short run starts the embedded Prefect server and the import caches
    run_engine(lab_spec(name="warmup", shots=3, duration_ms=5), root, "warmup")

    rows: list[tuple[str, str, dict[str, float]]] = []
    try:
        for duration, n in zip(durations, counts):
            results: dict[str, list[dict[str, float]]] = {"baseline": []}
            for _ in range(args.repeat):
                spec = lab_spec(name="duty", shots=n, duration_ms=duration)
                results["baseline"].append(run_baseline(spec).summary(duration))
                for k in per_task:
                    spec = lab_spec(name="duty", shots=n, duration_ms=duration, execution={"shots_per_task": k})
                    label = f"engine k={k}"
                    results.setdefault(label, []).append(run_engine(spec, root, f"d{duration}-k{k}").summary(duration))
            for label, runs in results.items():
                rows.append((f"{duration:g} ms x {n}", label, {key: median([r[key] for r in runs]) for key in runs[0]}))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"machine: {machine()}")
    print(f"medians of {args.repeat} repeats (baseline: compiled ahead, no Prefect, no store)")
    header = (
        f"{'shots':<14} {'run':<12} {'span ms':>8} {'gap med ms':>10} {'gap p95 ms':>10} {'cycle':>7} {'ms/shot':>8}"
        f" {'duty %':>7} {'play %':>7} {'vs base':>7}"
    )
    print(header)
    print("-" * len(header))
    base = 1.0
    for case, label, m in rows:
        if label == "baseline":
            base = m["play_duty"]
        print(
            f"{case:<14} {label:<12} {m['span']:8.2f} {m['gap_median']:10.3f} {m['gap_p95']:10.3f}"
            f" {m['cycle']:7.2f} {m['per_shot']:8.2f} {100 * m['duty']:7.2f} {100 * m['play_duty']:7.2f} {m['play_duty'] / base:7.3f}"
        )


if __name__ == "__main__":
    main()
