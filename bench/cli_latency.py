"""Wall time of the light ``shotflow`` commands, against ``python -c pass`` in the same run.

Each command is a fresh process, as a physicist types it: ``shotflow --help``, ``plan
examples/resonance.yaml``, ``schema``, and ``show`` on a small store (41 shots, as the
resonance example) and on a 1,000-shot store, both written with ShotStoreWriter in a
temporary folder. ``import flows`` is measured too: every command pays it (the executable is
``flows.cli:console_main``). The commands are run in turns (one of each, N times) so that a
change of load hits them all alike; the medians are reported, with the ratio to the baseline.

    python bench/cli_latency.py [--repeat 7] [--shots 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
from _common import machine

from tasks.records import SequenceState, ShotRecord
from tasks.store import ShotStoreWriter

ROOT = Path(__file__).resolve().parents[1]
SHOTFLOW = str(Path(sys.executable).with_name("shotflow"))
SMALL_SHOTS = 41
IMAGE_SHAPE = (64, 64)
TIMEOUT = 120.0


def write_store(path: Path, shots: int) -> Path:
    """A finished resonance-like store: detuning scan (41 values, cycled), a 64x64 image and a count."""

    async def write() -> None:
        async with ShotStoreWriter.open(
            path,
            spec_json='{"name": "bench"}',
            expected_shots=shots,
            parameter_units={"detuning": "Hz", "rf_frequency": "Hz", "rf_power": "W"},
        ) as writer:
            rng = np.random.default_rng(0)
            for i in range(shots):
                detuning = (i % SMALL_SHOTS - 20) * 1e5
                image = rng.integers(0, 4096, IMAGE_SHAPE, dtype=np.uint16)
                parameters = {"detuning": detuning, "rf_frequency": 80e6 + detuning, "rf_power": 1e-4}
                data = {"camera.image": image, "camera.atoms": float(image.sum())}
                await writer.write(ShotRecord(i, parameters, data, 1.7e9 + i, 1.7e9 + i + 0.01))
            await writer.finish(SequenceState.FINISHED)

    anyio.run(write)
    return path


def wall_time(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of ``argv``; raises if it fails."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=TIMEOUT, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited with {done.returncode}: {done.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    """Measure, then print the machine, the load and one line per command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each command (the median is reported)")
    parser.add_argument("--shots", type=int, default=1000, help="shots of the large store")
    args = parser.parse_args()

    env = os.environ | {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    folder = Path(tempfile.mkdtemp(prefix="shotflow-bench-cli-"))
    small = write_store(folder / "small.zarr", SMALL_SHOTS)
    large = write_store(folder / "large.zarr", args.shots)
    commands = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "python -c 'import flows'": [sys.executable, "-c", "import flows"],
        "shotflow --help": [SHOTFLOW, "--help"],
        "shotflow plan examples/resonance.yaml": [SHOTFLOW, "plan", "examples/resonance.yaml"],
        "shotflow schema": [SHOTFLOW, "schema"],
        f"shotflow show ({SMALL_SHOTS} shots)": [SHOTFLOW, "show", str(small)],
        f"shotflow show ({args.shots} shots)": [SHOTFLOW, "show", str(large)],
    }
    for argv in commands.values():  # warm the disk cache, check every command works
        wall_time(argv, env)
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, argv in commands.items():
            times[name].append(wall_time(argv, env))
    load_after = os.getloadavg()

    print(machine())
    load = "load average (1, 5, 15 min) {} before, {} after".format(
        *(" ".join(f"{x:.2f}" for x in avg) for avg in (load_before, load_after))
    )
    print(f"nproc {os.cpu_count()}; {load}")
    print(f"median (min .. max) of {args.repeat} runs per command, in turns; ratio = median / baseline median")
    baseline = statistics.median(times["python -c pass (baseline)"])
    width = max(map(len, commands))
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:<{width}}  {med:6.3f} s ({min(values):.3f} .. {max(values):.3f})  x{med / baseline:5.1f}")


if __name__ == "__main__":
    main()
