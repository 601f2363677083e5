"""Process start to first shot: ``shotflow run`` with a running Prefect server, and with shotflow's own.

Two cases, each a fresh ``shotflow run SPEC --store PATH`` process (a 5-shot, 20 ms scan on
sim.sequencer, sim.camera, sim.rf_source; every device writes a journal line on entry):

- **running server**: this benchmark starts ``prefect server start --host 127.0.0.1`` on a
  free port (fresh ``PREFECT_HOME``), waits for its health check, runs with
  ``PREFECT_API_URL`` set, then stops it (target: first shot under 2 s);
- **managed server**: no ``PREFECT_API_URL``; a first run starts shotflow's local server, the
  measured runs reuse it (target under 3 s); ``shotflow server stop`` at the end.

Each run reports, from the ``Popen`` call (``time.time()``): the first device entered (the
journal), the first shot started (the store's ``start_time``) and the process exit. The import
cost is measured apart: a fresh ``python -c "import flows.cli, flows.run"``.

    python bench/startup.py [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import _common  # noqa: F401  (private Prefect home for this process; telemetry off)
from _common import lab_spec, machine, median, read_store_times

BIN = Path(sys.executable).parent
SHOTFLOW = str(BIN / "shotflow")
PREFECT = str(BIN / "prefect")
TARGET_RUNNING = 2.0
TARGET_MANAGED = 3.0


def write_spec(folder: Path, journal: Path) -> Path:
    spec = lab_spec(name="startup", shots=5, duration_ms=20).model_dump(mode="json")
    for config in spec["devices"].values():
        config["faults"] = {"journal": str(journal)}
    path = folder / "startup.json"
    path.write_text(json.dumps(spec))
    return path


def environment(home: Path, api_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"PREFECT_HOME": str(home), "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env |= {"PREFECT_LOGGING_LEVEL": "WARNING"}
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    return env


def one_run(folder: Path, env: dict[str, str], tag: str) -> dict[str, float]:
    journal = folder / f"{tag}.jsonl"
    spec = write_spec(folder, journal)
    store = folder / f"{tag}.zarr"
    started = time.time()
    done = subprocess.run(
        [SHOTFLOW, "run", str(spec), "--store", str(store)], env=env, capture_output=True, text=True, timeout=300
    )
    ended = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"shotflow run {tag} exited {done.returncode}: {done.stderr[-2000:]}")
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    entered = min(e["time"] for e in entries if e["event"] == "enter")
    _, starts, _ = read_store_times(store)
    return {"enter": entered - started, "first_shot": float(starts[0]) - started, "exit": ended - started}


def import_seconds(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import flows.cli, flows.run"], env=env, check=True, timeout=120)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the Prefect server at {url} did not answer within {timeout:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2, help="measured runs per case")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="shotflow-bench-startup-"))
    rows: list[tuple[str, float, dict[str, float]]] = []
    imports: list[float] = []
    try:
        # --- a running server, PREFECT_API_URL set
        home = folder / "home-running"
        port = free_port()
        url = f"http://127.0.0.1:{port}/api"
        server = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=environment(home, None),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(url, 120)
            env = environment(home, url)
            imports.append(import_seconds(env))
            one_run(folder, env, "running-warmup")  # the server's first flow and deployment records
            runs = [one_run(folder, env, f"running-{i}") for i in range(args.runs)]
            rows.append(("running server", TARGET_RUNNING, {k: median([r[k] for r in runs]) for k in runs[0]}))
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        # --- shotflow's managed local server
        env = environment(folder / "home-managed", None)
        try:
            first = one_run(folder, env, "managed-first")
            rows.append(("managed, 1st (starts it)", float("nan"), first))
            runs = [one_run(folder, env, f"managed-{i}") for i in range(args.runs)]
            rows.append(("managed server", TARGET_MANAGED, {k: median([r[k] for r in runs]) for k in runs[0]}))
            imports.append(import_seconds(env))
        finally:
            subprocess.run([SHOTFLOW, "server", "stop"], env=env, capture_output=True, timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"machine: {machine()}; nproc {os.cpu_count()}; load average {os.getloadavg()}")
    print(f"import flows.cli + flows.run in a fresh process: {median(imports):.2f} s (median of {len(imports)})")
    print(f"medians of {args.runs} run(s); seconds from Popen")
    header = f"{'case':<26} {'devices entered':>15} {'first shot':>10} {'exit':>6}  target"
    print(header)
    print("-" * len(header))
    for name, target, r in rows:
        verdict = "" if target != target else f"< {target:g} s: {'ok' if r['first_shot'] < target else 'MISSED'}"
        print(f"{name:<26} {r['enter']:15.2f} {r['first_shot']:10.2f} {r['exit']:6.2f}  {verdict}")


if __name__ == "__main__":
    main()
