"""`shotflow show`: the text summary and the PNG plot of a store."""

from __future__ import annotations

import os
import re
from pathlib import Path

import anyio
import numpy as np
import pytest
from anyio import open_process
from store_helpers import SPEC_JSON, child_argv, record, write_store

from tasks.records import SequenceState, ShotRecord, ShotStatus
from tasks.store import (
    ShotStoreWriter,
    StoreError,
    StoreQueryError,
    describe_store,
    open_sequence,
    plot_store,
    store_state,
)

pytestmark = pytest.mark.anyio


def _resonance(i: int) -> ShotRecord:
    """A resonance scan: the image brightness peaks at detuning 0."""
    detuning = (i % 11 - 5) * 1e6
    brightness = 1000 / (1 + (detuning / 2e6) ** 2)
    rng = np.random.default_rng(i)
    image = (brightness + rng.normal(0, 20, (32, 32))).clip(0).astype(np.uint16)
    return ShotRecord(i, {"detuning": detuning}, {"camera.image": image}, 1.7e9 + i, 1.7e9 + i + 0.1)


async def test_describe_names_state_counts_parameters_and_variables(
    tmp_path: Path,
) -> None:
    path = tmp_path / "scan.zarr"
    failed = record(2, status=ShotStatus.FAILED, data={})
    error = {"shot": 2, "device": "camera", "message": "camera timed out after 5 s"}
    await write_store(
        path,
        [record(0), record(1), failed],
        expected_shots=10,
        state=SequenceState.FAILED,
        error=error,
    )
    text = describe_store(path)
    assert "failed" in text and "camera timed out after 5 s" in text and "device=camera" in text
    assert "2 completed of 10 expected (1 failed)" in text
    assert "parameters (over 2 completed shots)" in text
    assert "  x             0 m .. 1 mm, 2 distinct" in text  # engineering prefixes, like plan
    assert "  power         500 mW, constant" in text
    assert "  camera.image  uint16   (shot: 2, camera.image.y: 16, camera.image.x: 24)" in text
    assert "  scope.trace   float32  (shot: 2, scope.trace.sample: 50)" in text
    assert "  scope.peak    float64  (shot: 2)" in text


async def test_describe_a_store_being_written_then_crashed(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    async with await open_process([*child_argv(), str(path), "100000", "new", "unknown", "0.01", SPEC_JSON]) as child:
        assert child.stdout is not None
        assert (await child.stdout.receive()).startswith(b"ready")
        assert "running: a writer (pid" in describe_store(path)
        with anyio.fail_after(60):
            while open_sequence(path).sizes["shot"] < 3:  # the writer's shots show up live
                await anyio.sleep(0.05)
        assert store_state(path)["writer_alive"] is True
        child.kill()
        await child.wait()
    text = describe_store(path)
    assert "crashed" in text and "shotflow resume" in text
    assert store_state(path)["state"] == "crashed"


async def test_plot_writes_a_png_and_names_unknown_names(tmp_path: Path) -> None:
    path = tmp_path / "resonance.zarr"
    async with ShotStoreWriter.open(
        path, spec_json=SPEC_JSON, expected_shots=33, parameter_units={"detuning": "Hz"}
    ) as writer:
        for i in range(33):
            await writer.write(_resonance(i))
        await writer.finish(SequenceState.FINISHED)
    out = Path(os.environ.get("SHOTFLOW_TEST_PLOT", tmp_path / "plot.png"))  # set it to look at the plot
    assert plot_store(path, "camera.image", "detuning", out) == "detuning"
    assert out.read_bytes().startswith(b"\x89PNG")
    assert re.search(r"\n  detuning +-5 MHz \.\. 5 MHz, 11 distinct\n", describe_store(path))
    with pytest.raises(StoreQueryError, match="'camera.imag'.*available: camera.image") as info:
        plot_store(path, "camera.imag", "detuning", out)
    assert info.value.name == "camera.imag" and info.value.available == ["camera.image"]
    with pytest.raises(StoreQueryError, match="'detune'.*available: detuning, shot") as info:
        plot_store(path, "camera.image", "detune", out)
    assert info.value.available == ["detuning", "shot"]


def _scan_record(i: int, parameters: dict[str, float]) -> ShotRecord:
    return ShotRecord(i, parameters, {"scope.peak": float(i)}, 1.7e9 + i, 1.7e9 + i + 0.1)


@pytest.mark.parametrize(
    ("parameters", "axis"),
    [
        # one scan parameter, a constant and a derived one that follows it
        (lambda i: {"power": 1e-4, "detuning": i * 1e5, "rf": 8e7 + i * 1e5}, "detuning"),
        (lambda i: {"detuning": (i % 3) * 1e5, "rf": 8e7 + (i % 3) * 1e5}, "detuning"),  # repeats
        (lambda i: {"detuning": (i % 3) * 1e5, "time": (i // 3) * 1e-3}, "shot"),  # a 2-D scan
        (lambda i: {"power": 1e-4}, "shot"),  # nothing scanned
    ],
)
async def test_plot_without_against_picks_the_single_scan_parameter_else_shot(
    tmp_path: Path, parameters: object, axis: str
) -> None:
    path = tmp_path / "scan.zarr"
    records = [_scan_record(i, parameters(i)) for i in range(9)]  # type: ignore[operator]
    units = {"power": "W", "detuning": "Hz", "rf": "Hz", "time": "s"}
    async with ShotStoreWriter.open(path, spec_json=SPEC_JSON, expected_shots=9, parameter_units=units) as writer:
        for r in records:
            await writer.write(r)
    assert plot_store(path, "scope.peak", None, tmp_path / "plot.png") == axis
    assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG")


async def test_plot_of_store_without_data_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    await write_store(
        path,
        [record(0, status=ShotStatus.FAILED, data={})],
        expected_shots=2,
        state=SequenceState.FAILED,
    )
    with pytest.raises(StoreQueryError, match="no data variable 'camera.image'.*available: none"):
        plot_store(path, "camera.image", "x", tmp_path / "p.png")


async def test_plot_of_store_without_completed_shots_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "scan.zarr"
    await write_store(
        path,
        [record(0), record(1, status=ShotStatus.FAILED, data={})],
        expected_shots=2,
    )
    async with ShotStoreWriter.open(
        path, spec_json=SPEC_JSON, expected_shots=2, parameter_units={}, resume=True
    ) as writer:
        await writer.write(record(0, status=ShotStatus.FAILED, data={}))  # no completed shot left
    with pytest.raises(StoreError, match="no completed shot") as info:
        plot_store(path, "camera.image", None, tmp_path / "p.png")
    assert not isinstance(info.value, StoreQueryError)
