"""Every example scan in examples/ runs on the simulated lab and stores every shot."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from flows.run import run_sequence
from flows.sequence import SequenceSpec, count_shots, load_spec
from tasks.store import StoreNotReadyError, open_sequence, store_state

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


def _stored_shots(store: Path) -> int:
    """Shots in ``store`` so far; a store its run is still creating has none yet."""
    if not store.exists():
        return 0
    try:
        return open_sequence(store).sizes["shot"]
    except StoreNotReadyError:
        return 0


@pytest.mark.usefixtures("prefect_server")
def test_the_analysis_example_fits_a_store_that_is_still_being_written(tmp_path: Path) -> None:
    """examples/analysis.py on examples/resonance.yaml held at shot 30 of 41: it reads the 30
    completed shots on the grid, and its fitted centre is the simulated atoms' resonance."""
    import sys

    import anyio

    release = tmp_path / "release"
    data = load_spec(EXAMPLES / "resonance.yaml").model_dump(mode="json")
    data["devices"]["camera"]["faults"] = {"hold_shot": 30, "hold_until": str(release)}
    spec = SequenceSpec.model_validate(data)
    store = tmp_path / "resonance.zarr"

    async def scenario() -> tuple[object, str]:
        states: list[object] = []
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                states.append(await run_sequence(spec, store=str(store), return_state=True))

            tg.start_soon(run)
            with anyio.fail_after(300):
                while _stored_shots(store) < 30:
                    await anyio.sleep(0.1)
            done = await anyio.run_process(
                [sys.executable, str(EXAMPLES / "analysis.py"), str(store), "--png"], check=False
            )
            release.touch()
        return states[0], done.stdout.decode() + done.stderr.decode()

    state, output = anyio.run(scenario)
    assert state.is_completed(), state.message
    assert "plot written to" in output, output
    centre = re.search(r"centre (-?[\d.]+) (kHz|Hz|MHz)", output)
    assert centre, output
    value = float(centre.group(1)) * {"Hz": 1, "kHz": 1e3, "MHz": 1e6}[centre.group(2)]
    assert abs(value - 150e3) < 60e3, output  # examples/resonance.yaml: resonance 150 kHz, linewidth 600 kHz
    assert store.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
