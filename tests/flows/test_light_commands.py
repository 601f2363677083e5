"""``shotflow --help``, ``plan``, ``schema``, ``show``, ``watch`` and ``compact`` import no Prefect (issue 15).

Each command runs in a fresh interpreter as the real ``shotflow`` executable, under
``python -X importtime``, which lists on stderr every module the process imports. The test
reads that list, so neither a warm disk cache nor a fast machine can make it pass: it
asserts what is imported, never how long it takes (timings are in ``bench/cli_latency.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import numpy as np
import pytest
from simlab import SHOTFLOW

from flows.cli._main import COMMANDS, _resolve
from tasks.records import SequenceState, ShotRecord
from tasks.store import ShotStoreWriter

EXAMPLES = Path(__file__).parents[2] / "examples"
RUN_ONLY = ("prefect", "flows.run", "flows.locks", "flows.calibration", "tasks.prefect_tasks", "uvicorn")
"""What only ``run``, ``resume`` and ``server`` need."""
STORE_ONLY = ("tasks.store", "zarr", "xarray", "pandas")
"""What only ``show`` (and the run commands) need."""
PLOT_ONLY = ("matplotlib",)
"""What only ``show --plot`` needs."""


def _imported(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``shotflow ARGS``; return the finished process and the top-level packages it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", SHOTFLOW, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert lines, f"no -X importtime output: {done.stderr[-2000:]}"
    modules = {line.rsplit("|", 1)[1].strip() for line in lines[1:]}  # the first line is the header
    return done, modules


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """The ``names`` (packages or modules) of which ``modules`` holds the module or a submodule."""
    return [name for name in names if any(m == name or m.startswith(name + ".") for m in modules)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished store of 5 shots (a detuning scan with an image), written without Prefect."""
    path = tmp_path_factory.mktemp("light") / "s.zarr"

    async def write() -> None:
        spec = json.dumps({"name": "light", "shots": "detuning in linspace(-2 MHz, 2 MHz, 5)"})
        async with ShotStoreWriter.open(
            path, spec_json=spec, expected_shots=5, parameter_units={"detuning": "Hz"}
        ) as writer:
            for i in range(5):
                image = np.full((4, 4), i, dtype=np.uint16)
                await writer.write(ShotRecord(i, {"detuning": (i - 2) * 1e6}, {"camera.atoms": image}, i, i + 0.1))
            await writer.finish(SequenceState.FINISHED)

    anyio.run(write)
    return path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """This session's environment with a Prefect home of the test's own (``server status`` reads it)."""
    return os.environ | {"PREFECT_HOME": str(tmp_path / "prefect-home")}


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["plan", str(EXAMPLES / "resonance.yaml")],
        ["plan", "--json", str(EXAMPLES / "scan_2d.yaml")],
        ["schema"],
    ],
    ids=["help", "plan", "plan-json", "schema"],
)
def test_help_plan_and_schema_import_neither_prefect_nor_the_store(args: list[str], env: dict[str, str]) -> None:
    done, modules = _imported(args, env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _loaded(modules, RUN_ONLY + STORE_ONLY + PLOT_ONLY) == []


@pytest.mark.parametrize("args", [["--help"], ["server", "--help"]], ids=["help", "server-help"])
def test_help_loads_neither_the_sequence_language_nor_pint(args: list[str], env: dict[str, str]) -> None:
    """``--help`` is argparse: the sequence language and pint's unit registry are for the commands that use them."""
    done, modules = _imported(args, env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _loaded(modules, ("flows.sequence", "pint")) == []


def test_show_loads_no_unit_registry_of_the_sequence_language(store: Path, env: dict[str, str]) -> None:
    done, modules = _imported(["show", str(store)], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _loaded(modules, ("flows.sequence",)) == []


def test_plan_refusing_a_bad_spec_imports_no_prefect(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\niteration:\n  - {declare: {variable: d, value: 2 wobbles}}\n  - shot\n")
    done, modules = _imported(["plan", str(bad)], env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert _loaded(modules, RUN_ONLY + STORE_ONLY) == []


def test_run_refusing_a_bad_spec_imports_neither_prefect_nor_the_store(tmp_path: Path, env: dict[str, str]) -> None:
    """The spec is checked first; the run's heavy imports come only once its server is starting (they overlap it)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\niteration:\n  - {declare: {variable: d, value: 2 wobbles}}\n  - shot\n")
    done, modules = _imported(["run", str(bad)], env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "wobbles" in done.stderr
    assert _loaded(modules, RUN_ONLY + STORE_ONLY) == []


def test_show_imports_the_store_but_no_prefect_and_no_matplotlib(store: Path, env: dict[str, str]) -> None:
    done, modules = _imported(["show", str(store)], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "detuning" in done.stdout
    assert _loaded(modules, RUN_ONLY + PLOT_ONLY) == []


def test_show_plot_imports_matplotlib_but_no_prefect(store: Path, tmp_path: Path, env: dict[str, str]) -> None:
    png = tmp_path / "atoms.png"
    done, modules = _imported(["show", str(store), "--plot", "camera.atoms", "-o", str(png)], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert png.read_bytes().startswith(b"\x89PNG")
    assert _loaded(modules, PLOT_ONLY) == ["matplotlib"]
    assert _loaded(modules, RUN_ONLY) == []


def test_watch_of_a_finished_store_imports_matplotlib_but_no_prefect(
    store: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    png = tmp_path / "live.png"
    done, modules = _imported(["watch", str(store), "--plot", "camera.atoms", "-o", str(png)], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "the run is finished: 5 shots plotted"
    assert png.read_bytes().startswith(b"\x89PNG")
    assert _loaded(modules, RUN_ONLY) == []


def test_compact_imports_the_store_but_no_prefect(store: Path, tmp_path: Path, env: dict[str, str]) -> None:
    copy = tmp_path / "copy.zarr"
    shutil.copytree(store, copy)
    done, modules = _imported(["compact", str(copy)], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "compacted 1 array(s)" in done.stdout
    assert _loaded(modules, RUN_ONLY + PLOT_ONLY) == []


def test_server_status_does_import_prefect(env: dict[str, str]) -> None:
    """The probe sees Prefect where it is imported: the checks above cannot pass by being blind."""
    done, modules = _imported(["server", "status"], env)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "prefect" in _loaded(modules, RUN_ONLY)


def test_every_command_registered_by_name_resolves_to_a_function() -> None:
    """A misspelt ``".module:function"`` would fail only when that command runs; here it fails at once."""
    assert list(COMMANDS) == ["plan", "schema", "run", "resume", "show", "compact", "watch", "server"]  # --help order
    for name, (run, _, _) in COMMANDS.items():
        assert callable(_resolve(run)), name
