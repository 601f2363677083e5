"""``shotflow show`` as a physicist types it: the summary, a plot, and bad input refused with exit code 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from simlab import SHOTFLOW, lab_spec, run

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("show") / "s.zarr"
    assert run(lab_spec(shots=5), path).is_completed()
    return path


def _show(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHOTFLOW, "show", *args], capture_output=True, text=True, timeout=120, check=False)


def test_show_prints_parameters_with_prefixed_units(store: Path) -> None:
    shown = _show(str(store))
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if line.strip().startswith("detuning"))
    assert "-2 MHz .. 2 MHz" in line and "5 distinct" in line, line


def test_plot_without_against_uses_the_scan_parameter(store: Path, tmp_path: Path) -> None:
    png = tmp_path / "atoms.png"
    shown = _show(str(store), "--plot", "camera.atoms", "-o", str(png))
    assert shown.returncode == 0, shown.stderr
    assert "against detuning" in shown.stdout
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--plot", "camera.nothing", "-o", "x.png"], "camera.nothing"),
        (["--plot", "camera.atoms", "--against", "nowhere", "-o", "x.png"], "nowhere"),
        (["--plot", "camera.atoms"], "-o FILE"),
        (["--against", "detuning"], "--plot"),
    ],
)
def test_bad_input_exits_2_with_one_message_and_no_summary(
    store: Path, tmp_path: Path, args: list[str], names: str
) -> None:
    shown = _show(str(store), *[str(tmp_path / a) if a == "x.png" else a for a in args])
    assert shown.returncode == 2, (shown.stdout, shown.stderr)
    assert names in shown.stderr
    assert shown.stdout == "", "the summary was printed before the error"
