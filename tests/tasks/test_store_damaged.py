"""A damaged chunk file (issue 11, class 3c): readers raise a StoreError naming the store and the
array, and ``shotflow show`` says so in one line (exit 1), no traceback. The chunk files of a
real store are really truncated or overwritten."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from simlab import SHOTFLOW
from store_helpers import record, write_store

from tasks.store import StoreError, describe_store, load_values, open_sequence, plot_store

ARRAYS = ["status", "x", "start_time", "scope.peak", "camera.image", "scope.trace"]


def _damage(path: Path, array: str, keep: float, garbage: bytes) -> Path:
    chunks = sorted(p for p in (path / array / "c").rglob("*") if p.is_file())
    chunk = chunks[0]
    data = chunk.read_bytes()
    chunk.write_bytes(data[: int(keep * (len(data) - 1))] + garbage)
    return chunk


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pristine") / "s.zarr"
    anyio.run(lambda: write_store(path, [record(i) for i in range(3)], expected_shots=3))
    return path


def _read_everything(path: Path, array: str) -> None:
    describe_store(path)
    load_values(path, open_sequence(path, completed_only=False), array)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(array=st.sampled_from(ARRAYS), keep=st.floats(0, 0.95), garbage=st.binary(max_size=8))
@example(array="scope.trace", keep=0.0078125, garbage=b"")  # blosc: SystemError, seen in CI
def test_a_damaged_chunk_is_a_store_error_naming_the_store_and_the_array(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory, array: str, keep: float, garbage: bytes
) -> None:
    path = tmp_path_factory.mktemp("damaged") / "s.zarr"
    subprocess.run(["cp", "-a", str(pristine), str(path)], check=True)
    _damage(path, array, keep, garbage)
    try:
        _read_everything(path, array)
    except StoreError as exc:
        assert str(path) in str(exc) and repr(array) in str(exc), exc
    # else: a few damaged files still decode (e.g. garbage that the codec accepts): no crash either way


def test_show_reports_a_damaged_store_in_one_line(pristine: Path, tmp_path: Path, terminal: dict[str, str]) -> None:
    path = tmp_path / "s.zarr"
    subprocess.run(["cp", "-a", str(pristine), str(path)], check=True)
    _damage(path, "status", 0.5, b"")
    with pytest.raises(StoreError, match="'status'"):
        plot_store(path, "scope.peak", None, tmp_path / "p.png")
    done = subprocess.run([SHOTFLOW, "show", str(path)], env=terminal, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert str(path) in done.stderr and "'status'" in done.stderr
