"""Every example scan in examples/ runs on the simulated lab and stores every shot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flows.run import run_sequence
from flows.sequence import count_shots, load_spec
from tasks.store import open_sequence, store_state

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCANS = ["rabi.yaml", "resonance.yaml", "scan_2d.yaml"]


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("name", SCANS)
def test_example_runs_and_stores_every_shot(name: str, tmp_path: Path) -> None:
    spec = load_spec(EXAMPLES / name)
    store = tmp_path / f"{spec.name}.zarr"
    state = asyncio.run(run_sequence(spec, store=str(store), return_state=True))
    assert state.is_completed(), state.message
    result = state.result()
    dataset = open_sequence(store)
    expected = count_shots(spec)
    assert result.completed_shots == dataset.sizes["shot"]
    if expected is not None:
        assert dataset.sizes["shot"] == expected
    assert store_state(store)["state"] == "finished"
    assert "camera.atoms" in dataset.data_vars or "camera.cloud" in dataset.data_vars
