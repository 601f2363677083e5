"""Load: a long sequence of zero-length shots and a sequence of large images at the maximum rate.

- 20,000 zero-length shots (no timeline, one light device): memory stays flat over the second
  half of the run (RSS read from /proc/self/status by a ``flows.progress_listener`` callback;
  a generous bound, not a timing assertion), no shot is dropped, the store is complete.
  ``shots_per_task`` 500 keeps the Prefect server's load small (80 task runs in all).
  ``python bench/engine_memory.py`` measures the slope per 1000 shots.
- 200 images of 512x512 pixels, back to back: every shot's image is in the store and equals,
  bit for bit, the simulated camera's deterministic image for that shot (seeded by seed, shot
  index and picture index), so the store writer's back-pressure never lost or mixed up data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from _rlab import lab_dict, run

from devices.sim.camera import atom_number, simulate_image
from flows.run import Progress, progress_listener
from flows.sequence import SequenceSpec
from tasks.store import open_sequence, store_state

pytestmark = pytest.mark.usefixtures("prefect_server")

logger = logging.getLogger(__name__)

LONG_SHOTS = 20_000
RSS_GROWTH_LIMIT_MB = 40.0
"""Allowed RSS growth over the second half of the long run (measured here: 3.3 MB)."""
IMAGE_SHOTS = 200
ROI = (512, 512)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _zero_length_spec(shots: int) -> SequenceSpec:
    spec = lab_dict(
        shots=shots,
        devices=("rf",),
        name="load-zero-length",
        execution={"shots_per_task": 500, "lookahead": 2, "shot_timeout": "10 s"},
    )
    spec["timeline"] = {"steps": [], "lanes": {}}
    return SequenceSpec.model_validate(spec)


def test_20000_zero_length_shots_memory_flat_and_store_complete(tmp_path: Path) -> None:
    samples: list[tuple[int, float]] = []

    def sample(progress: Progress) -> None:
        samples.append((progress.completed, _rss_mb()))

    store = tmp_path / "long.zarr"
    with progress_listener(sample):
        state = run(_zero_length_spec(LONG_SHOTS), store)
    assert state.is_completed(), state.message

    info = store_state(store)
    assert info["state"] == "finished", info
    assert info["completed_shots"] == LONG_SHOTS
    everything = open_sequence(store, completed_only=False)
    assert everything.sizes["shot"] == LONG_SHOTS
    assert (everything["status"].values == 1).all(), "a shot was dropped"
    assert everything["shot"].values.tolist() == list(range(LONG_SHOTS))
    detuning = np.linspace(-2e6, 2e6, LONG_SHOTS)
    np.testing.assert_allclose(everything["detuning"].values, detuning)
    np.testing.assert_allclose(everything["rf.frequency"].values, 80e6 + detuning)

    # memory: from the first sample at or past half the shots to the last sample while running
    running = [(done, mb) for done, mb in samples if done < LONG_SHOTS]
    second_half = [mb for done, mb in running if done >= LONG_SHOTS // 2]
    assert len(second_half) >= 3, f"too few RSS samples in the second half: {samples[-5:]}"
    growth = max(second_half) - second_half[0]
    logger.info("RSS growth over the second half of %d shots: %.1f MB", LONG_SHOTS, growth)
    assert growth < RSS_GROWTH_LIMIT_MB, (
        f"RSS grew {growth:.1f} MB over the second half ({second_half[0]:.1f} -> {max(second_half):.1f} MB)"
    )


def _image_spec() -> SequenceSpec:
    spec = lab_dict(
        shots=IMAGE_SHOTS,
        devices=("camera",),
        name="load-images",
        overrides={"camera": {"roi": list(ROI), "exposure": "10 us"}},
        execution={"shots_per_task": 20, "lookahead": 4, "shot_timeout": "10 s"},
    )
    spec["timeline"] = {
        "steps": [{"name": "image", "duration": "10 us"}],
        "lanes": {"camera": {"kind": "camera", "values": ["atoms"]}},
    }
    return SequenceSpec.model_validate(spec)


def _expected_image(shot: int, detuning: float) -> np.ndarray:
    """The sim camera's picture 0 of ``shot``: its model with _rlab's settings and defaults, seed 0."""
    atoms = atom_number(1e5, detuning, 0.2e6, 1e6, None, 50e3)
    rng = np.random.default_rng([0, shot, 0])
    return simulate_image(ROI, atoms, 8.0, 100.0, rng)


def test_large_images_at_full_rate_all_stored_bit_exact(tmp_path: Path) -> None:
    spec = _image_spec()
    store = tmp_path / "images.zarr"
    state = run(spec, store)
    assert state.is_completed(), state.message

    info = store_state(store)
    assert info["state"] == "finished", info
    assert info["completed_shots"] == IMAGE_SHOTS
    ds = open_sequence(store, completed_only=False)
    assert (ds["status"].values == 1).all(), "a shot was dropped"
    images = ds["camera.atoms"]
    assert images.shape == (IMAGE_SHOTS, *ROI)
    assert images.dtype == np.uint16
    detuning = np.linspace(-2e6, 2e6, IMAGE_SHOTS)
    np.testing.assert_allclose(ds["detuning"].values, detuning)
    for shot in range(IMAGE_SHOTS):
        expected = _expected_image(shot, float(detuning[shot]))
        stored = images.isel(shot=shot).values
        assert np.array_equal(stored, expected), f"shot {shot}: stored image differs from the simulated one"
