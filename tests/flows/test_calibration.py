"""Calibration flows against the embedded Prefect server and the simulated lab."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from _lab import read_journal
from prefect.variables import Variable

from flows.calibration import calibrate_rabi, calibrate_resonance
from flows.calibration._fit import FitQuality, atom_numbers, check_fit, fit_lorentzian, fit_rabi, lorentzian
from flows.run import run_sequence, store_calibrated
from flows.sequence import SequenceSpec
from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.usefixtures("prefect_server")

EXAMPLES = Path(__file__).parents[2] / "examples"
TRUE_RESONANCE = 80.137e6
"""The simulated line center of examples/calibration_resonance.yaml."""


def example(name: str, root: Path, **changes: Any) -> SequenceSpec:
    data = yaml.safe_load((EXAMPLES / name).read_text())
    data["storage"] = {"root": str(root)}
    for key, value in changes.items():
        data[key] = value
    return SequenceSpec.model_validate(data)


def variable(name: str) -> Any:
    return asyncio.run(Variable.aget(f"calibrated_{name}", default=None))


# --- the analysis on its own -----------------------------------------------------------------


def test_atom_numbers_remove_the_background() -> None:
    images = np.full((2, 8, 8), 100.0)
    images[1, 3:5, 3:5] += 25.0
    np.testing.assert_allclose(atom_numbers(images), [0.0, 100.0])


def test_lorentzian_fit_finds_the_center_and_passes_the_check() -> None:
    x = np.linspace(79e6, 81e6, 31)
    rng = np.random.default_rng(1)
    y = lorentzian(x, 80.2e6, 0.4e6, 1e5, 0.0) + rng.normal(0, 300, x.size)
    fit = fit_lorentzian(x, y)
    assert fit is not None and abs(fit.value("center") - 80.2e6) < 10e3
    assert check_fit(fit, "center", fit.value("width"), (79e6, 81e6), FitQuality()) is None


def test_noise_fails_the_check() -> None:
    x = np.linspace(60e6, 61e6, 31)
    y = np.random.default_rng(2).normal(0, 300, x.size)
    fit = fit_lorentzian(x, y)
    problem = check_fit(fit, "center", fit.value("width") if fit else 1.0, (60e6, 61e6), FitQuality())
    assert problem is not None


def test_rabi_fit_finds_the_frequency() -> None:
    t = np.linspace(0, 40e-6, 25)
    y = 1e5 * np.sin(np.pi * 50e3 * t) ** 2 + np.random.default_rng(3).normal(0, 500, t.size)
    fit = fit_rabi(t, y)
    assert fit is not None and abs(fit.value("frequency") - 50e3) < 500


# --- the flows -------------------------------------------------------------------------------


def test_calibration_stores_the_fitted_resonance(tmp_path: Path) -> None:
    spec = example("calibration_resonance.yaml", tmp_path)
    state = asyncio.run(calibrate_resonance(spec, variable="rf_frequency", return_state=True))
    assert state.is_completed(), state.message
    result = state.result()
    assert abs(result.value - TRUE_RESONANCE) < 3 * result.uncertainty + 5e3
    stored = variable("resonance")
    assert stored["value"] == pytest.approx(result.value) and stored["unit"] == "Hz"
    assert stored["uncertainty"] > 0 and stored["timestamp"] and stored["flow_run"]
    assert store_state(result.store)["state"] == "finished"
    report = asyncio.run(_artifact("calibration-resonance"))
    assert re.search(r"\| center \| [\d.]+ MHz ± [\d.]+ [kM]?Hz \|", report), report[:400]
    assert re.search(r"\| width \| [\d.]+ [kM]Hz ± ", report), report[:400]


async def _artifact(key: str) -> str:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        artifact = await client.read_latest_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        return str(artifact[0].data)


def test_failed_fit_keeps_the_previous_value(tmp_path: Path) -> None:
    asyncio.run(store_calibrated("resonance_kept", 80.1e6, "Hz", 1e3, "earlier-run"))
    before = variable("resonance_kept")
    far = example(
        "calibration_resonance.yaml",
        tmp_path,
        iteration=[
            {
                "linspace": {
                    "variable": "rf_frequency",
                    "start": "60 MHz",
                    "stop": "61 MHz",
                    "num": 15,
                    "steps": ["shot"],
                }
            }
        ],
    )
    state = asyncio.run(calibrate_resonance(far, variable="rf_frequency", name="resonance_kept", return_state=True))
    assert state.is_failed()
    assert "rejected" in state.message and "previous value" in state.message, state.message
    assert variable("resonance_kept") == before


def test_sequence_uses_the_calibrated_resonance(tmp_path: Path) -> None:
    asyncio.run(store_calibrated("resonance", TRUE_RESONANCE, "Hz", 1e3, "test"))
    spec = example("calibrated_scan.yaml", tmp_path)
    state = asyncio.run(run_sequence(spec, store=str(tmp_path / "s.zarr"), return_state=True))
    assert state.is_completed(), state.message
    ds = open_sequence(tmp_path / "s.zarr")
    np.testing.assert_allclose(ds["rf.frequency"].values, TRUE_RESONANCE + ds["detuning"].values)
    atoms = atom_numbers(ds["camera.atoms"].values)
    assert ds["detuning"].values[int(np.argmax(atoms))] == 0.0, "the scan is not centred on the resonance"


def test_missing_calibration_is_refused_before_devices_are_touched(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "journal.jsonl"
    spec = example("calibrated_scan.yaml", tmp_path)
    data = spec.model_dump(mode="json")
    text = yaml.safe_dump(data).replace("calibrated.resonance", "calibrated.never_measured")
    data = yaml.safe_load(text)
    for device in data["devices"].values():
        device["faults"] = {"journal": str(journal)}
    state = asyncio.run(run_sequence(SequenceSpec.model_validate(data), return_state=True))
    assert state.is_failed()
    assert "calibrated.never_measured" in state.message and "run the calibration first" in state.message
    assert not read_journal(journal)


def test_rabi_calibration_stores_the_pi_time(tmp_path: Path) -> None:
    data = yaml.safe_load((EXAMPLES / "calibration_resonance.yaml").read_text())
    data["name"] = "calibration-rabi"
    data["storage"] = {"root": str(tmp_path)}
    data["parameters"] = {"rf_frequency": "80.137 MHz"}
    data["iteration"] = [
        {
            "linspace": {
                "variable": "pulse_duration",
                "start": "0 us",
                "stop": "30 us",
                "num": 25,
                "steps": ["shot"],
            }
        }
    ]
    data["devices"]["camera"]["pulse_time"] = "pulse_duration"
    data["devices"]["camera"]["rabi_frequency"] = "50 kHz"
    state = asyncio.run(calibrate_rabi(SequenceSpec.model_validate(data), return_state=True))
    assert state.is_completed(), state.message
    assert state.result().value == pytest.approx(10e-6, rel=0.02)
    assert variable("pi_pulse")["unit"] == "s"


def test_the_report_plot_shows_the_scan_in_megahertz() -> None:
    from flows.calibration._flows import _Analysis, _figure

    x = np.linspace(79e6, 81e6, 31)
    y = lorentzian(x, 80.1e6, 0.4e6, 500.0, 20.0)
    figure = _figure(_Analysis(x=x.tolist(), y=y.tolist(), unit="Hz"), fit_lorentzian(x, y), "rf_frequency")
    (axes,) = figure.axes
    assert axes.get_xlabel() == "rf_frequency (MHz)"
    low, high = axes.get_xlim()
    assert 78 < low < 79.1 and 80.9 < high < 82, (low, high)
    assert axes.xaxis.get_major_formatter().get_offset() == ""  # no "+7.9e7" offset above the axis
