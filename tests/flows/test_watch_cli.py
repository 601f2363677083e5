"""``shotflow watch STORE --plot VAR -o FILE.png``: a plot that follows a store another process writes.

The run is the user's ``shotflow run`` in its own process; the simulated camera holds shot 3
until the test creates a release file, so the watch is known to see the scan part-way, then
the whole of it, with no race on the clock. The PNGs are read back as images.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import matplotlib.image
import pytest
import yaml
from simlab import SHOTFLOW, lab_dict

from tasks.store import store_state

SHOTS = 6
HELD = 3
TIMEOUT = 300.0


def _held(journal: Path) -> bool:
    try:
        return any(json.loads(line)["event"] == "held" for line in journal.read_text().splitlines() if line)
    except FileNotFoundError:
        return False


def _read_line(proc: subprocess.Popen[str], what: str) -> str:
    line = proc.stdout.readline() if proc.stdout else ""
    assert line, f"shotflow watch ended before {what}: {proc.stderr.read() if proc.stderr else ''}"
    return line.strip()


def test_watch_follows_a_run_of_another_process_until_it_ends(tmp_path: Path, terminal: dict[str, str]) -> None:
    journal, release = tmp_path / "journal.jsonl", tmp_path / "release"
    spec = lab_dict(
        shots=SHOTS, name="watched", journal=journal, faults={"camera": {"hold_shot": HELD, "hold_until": str(release)}}
    )
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    store, png = tmp_path / "s.zarr", tmp_path / "live.png"
    run = subprocess.Popen(
        [SHOTFLOW, "run", str(tmp_path / "spec.yaml"), "--store", str(store)],
        env=terminal,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    watch = None
    try:
        deadline = time.monotonic() + TIMEOUT
        while not _held(journal):  # the camera holds shot HELD: shots 0..HELD-1 are done
            assert run.poll() is None, run.stderr.read() if run.stderr else ""
            assert time.monotonic() < deadline, "the run never reached the held shot"
            time.sleep(0.05)
        watch = subprocess.Popen(
            [SHOTFLOW, "watch", str(store), "--plot", "camera.atoms", "-o", str(png), "--every", "0.2"],
            env=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = _read_line(watch, "its first plot")
        assert first == f"{HELD} shots plotted (running): {png}", first
        assert matplotlib.image.imread(png).ndim == 3  # a real PNG, complete (it is replaced atomically)
        assert not list(tmp_path.glob(".live.png.*")), "no temporary file is left beside the PNG"
        release.touch()
        assert run.wait(TIMEOUT) == 0, run.stderr.read() if run.stderr else ""
        lines = [first]
        while not lines[-1].startswith("the run is"):
            lines.append(_read_line(watch, "the end of the run"))
        assert watch.wait(60) == 0
        assert lines[-1] == f"the run is finished: {SHOTS} shots plotted", lines
        assert lines[-2] in (f"{SHOTS} shots plotted (running): {png}", f"{SHOTS} shots plotted (finished): {png}")
        assert matplotlib.image.imread(png).ndim == 3
        assert store_state(store)["state"] == "finished"
    finally:
        release.touch()
        for proc in (run, watch):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--plot", "nosuch", "-o", "x.png"], "no data variable 'nosuch'"),
        (["--plot", "camera.atoms", "--against", "nosuch", "-o", "x.png"], "no parameter 'nosuch'"),
        (["--plot", "camera.atoms", "-o", "x.jpg"], "expected a .png file"),
        (["--plot", "camera.atoms", "-o", "x.png", "--every", "0"], "expected a positive number"),
    ],
)
def test_watch_refuses_bad_input_with_exit_2(
    tmp_path: Path, terminal: dict[str, str], finished_store: Path, args: list[str], message: str
) -> None:
    done = subprocess.run(
        [SHOTFLOW, "watch", str(finished_store), *args], env=terminal, capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr, done.stderr


def test_watch_of_a_folder_that_is_no_store_exits_2(tmp_path: Path, terminal: dict[str, str]) -> None:
    done = subprocess.run(
        [SHOTFLOW, "watch", str(tmp_path), "--plot", "camera.atoms", "-o", str(tmp_path / "x.png")],
        env=terminal,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "shotflow watch: error:" in done.stderr, done.stderr


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory: pytest.TempPathFactory, terminal: dict[str, str]) -> Path:
    folder = tmp_path_factory.mktemp("watched")
    (folder / "spec.yaml").write_text(yaml.safe_dump(lab_dict(shots=3, name="watched")))
    store = folder / "s.zarr"
    subprocess.run(
        [SHOTFLOW, "run", str(folder / "spec.yaml"), "--store", str(store)],
        env=terminal,
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    return store
