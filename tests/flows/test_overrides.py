"""Overrides (``run_sequence(overrides=...)``, ``shotflow run/plan --set``): globals and device
settings replaced by name, validated like the spec, refused naming the key before any instrument."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from _lab import events, lab_spec, read_journal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simlab import SHOTFLOW, log_lines

from flows import SpecError
from flows.run import run_sequence
from flows.sequence import apply_overrides, load_spec
from tasks.store import open_sequence, read_store_spec, store_state

SPEC = lab_spec(shots=3)


# --- the function --------------------------------------------------------------------------


def test_a_global_and_a_device_setting_are_replaced_and_the_rest_is_kept() -> None:
    effective = apply_overrides(SPEC, {"offset": "1 MHz", "devices.camera.exposure": "2 ms"})
    assert effective.parameters == {"offset": "1 MHz"}
    assert effective.devices["camera"].exposure == "2 ms"  # type: ignore[attr-defined]
    assert effective.model_dump(exclude={"parameters", "devices"}) == SPEC.model_dump(exclude={"parameters", "devices"})
    assert SPEC.parameters == {"offset": "0 MHz"}  # the given spec is not changed


def test_a_nested_device_setting_is_reached_by_its_dotted_path() -> None:
    effective = apply_overrides(SPEC, {"devices.camera.faults.fail_compile_shot": "1"})
    assert effective.devices["camera"].faults.fail_compile_shot == 1  # type: ignore[attr-defined]


def test_no_overrides_is_the_spec_itself() -> None:
    assert apply_overrides(SPEC, {}) is SPEC


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("nope", "1", "no global parameter 'nope'"),
        ("devices.cam.exposure", "1 ms", "no device 'cam'"),
        ("devices.camera", "1 ms", "name a setting of device 'camera'"),
        ("devices.camera.shutter", "1 ms", "devices.camera has no setting 'shutter'"),
        ("devices.camera.faults.nope", "1", "devices.camera.faults has no setting 'nope'"),
        ("devices.camera.type", "sim.scope", "a device's type cannot be overridden"),
        ("devices.camera.exposure", "2 kg", "expected a value in s"),
        ("offset", "1 +", "invalid syntax"),
        ("offset", "1 s", "dimension mismatch"),  # the scan adds it to a frequency
        ("devices.camera.roi", "3", "roi"),
    ],
)
def test_a_bad_override_is_refused_naming_its_key(key: str, value: str, problem: str) -> None:
    with pytest.raises(SpecError) as refused:
        apply_overrides(SPEC, {key: value})
    message = str(refused.value)
    assert message.startswith(f"overrides[{key!r}]: "), message
    assert problem in message


def test_the_refusal_names_the_bad_key_among_good_ones() -> None:
    with pytest.raises(SpecError, match=r"^overrides\['devices.rf.frequency'\]: .*expected a value in Hz"):
        apply_overrides(SPEC, {"offset": "1 MHz", "devices.rf.frequency": "3 ms", "devices.camera.exposure": "2 ms"})


_names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_names.filter(lambda n: n not in SPEC.parameters), value=st.text(max_size=20))
def test_any_unknown_global_is_refused_naming_it(name: str, value: str) -> None:
    with pytest.raises(SpecError, match=rf"^overrides\[{name!r}\]: no global parameter"):
        apply_overrides(SPEC, {name: value})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(device=_names.filter(lambda n: n not in SPEC.devices), field=_names)
def test_any_unknown_device_is_refused_naming_it(device: str, field: str) -> None:
    key = f"devices.{device}.{field}"
    with pytest.raises(SpecError, match=rf"^overrides\[{key!r}\]: no device {device!r}"):
        apply_overrides(SPEC, {key: "1"})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    magnitude=st.floats(min_value=1e-3, max_value=1e3, allow_nan=False),
    unit=st.sampled_from(["kg", "m", "Hz", "MHz", "V", "A", "K", "mW"]),
)
def test_an_exposure_in_any_unit_but_time_is_refused_naming_the_key(magnitude: float, unit: str) -> None:
    key = "devices.camera.exposure"
    with pytest.raises(SpecError, match=rf"^overrides\[{key!r}\]: .*expected a value in s"):
        apply_overrides(SPEC, {key: f"{magnitude!r} {unit}"})


# --- the flow ------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_server")
def test_a_run_with_overrides_stores_the_values_and_the_spec_as_it_ran(tmp_path: Path) -> None:
    store = tmp_path / "s.zarr"
    overrides = {"offset": "1 MHz", "devices.rf.frequency": "81 MHz + detuning"}
    state = asyncio.run(run_sequence(SPEC, store=str(store), overrides=overrides, return_state=True))
    assert state.is_completed(), state.message
    ds = open_sequence(store)
    np.testing.assert_allclose(ds["detuning"].values, [-1e6, 0.5e6, 2e6])  # linspace(-2 MHz + offset, 2 MHz)
    np.testing.assert_allclose(ds["rf.frequency"].values, 81e6 + ds["detuning"].values)
    stored = load_spec(read_store_spec(store))
    assert stored == apply_overrides(SPEC, overrides)
    assert store_state(store)["overrides"] == overrides  # recorded apart from the spec they changed
    plain = tmp_path / "plain.zarr"
    assert asyncio.run(run_sequence(SPEC, store=str(plain), return_state=True)).is_completed()
    assert store_state(plain)["overrides"] == {}
    assert "overrides" not in xr.open_zarr(plain).attrs  # absent, not an empty record
    lines = asyncio.run(log_lines(state.state_details.flow_run_id))
    assert any(m == "overrides: offset = 1 MHz, devices.rf.frequency = 81 MHz + detuning" for m, _ in lines)


@pytest.mark.usefixtures("prefect_server")
def test_a_refused_override_fails_the_run_first_thing_and_touches_nothing(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    store = tmp_path / "s.zarr"
    spec = lab_spec(shots=3, journal=journal)
    state = asyncio.run(
        run_sequence(spec, store=str(store), overrides={"devices.camera.exposure": "2 kg"}, return_state=True)
    )
    assert state.is_failed()
    errors = [m for m, level in asyncio.run(log_lines(state.state_details.flow_run_id)) if level >= 40]
    assert errors[0].startswith("overrides['devices.camera.exposure']: "), errors
    assert "expected a value in s" in errors[0]
    assert events(read_journal(journal), "enter") == [] and not store.exists()


# --- the command line ----------------------------------------------------------------------


def _spec_file(tmp_path: Path, journal: Path | None = None) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(lab_spec(shots=3, journal=journal).model_dump(mode="json")))
    return path


def test_plan_shows_the_shots_of_the_overridden_spec(tmp_path: Path) -> None:
    done = subprocess.run(
        [SHOTFLOW, "plan", str(_spec_file(tmp_path)), "--json", "--set", "offset=1 MHz"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    shots = [json.loads(line) for line in done.stdout.splitlines()]
    assert [shot["parameters"]["detuning"] for shot in shots] == pytest.approx([-1e6, 0.5e6, 2e6])


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        ("devices.camera.exposure=2 kg", "overrides['devices.camera.exposure']: "),
        ("detuning_offset=1 MHz", "overrides['detuning_offset']: no global parameter"),
        ("offset", "--set 'offset': write --set NAME=EXPR"),
    ],
)
def test_a_bad_set_exits_2_naming_it_before_any_instrument(tmp_path: Path, option: str, problem: str) -> None:
    journal = tmp_path / "journal.jsonl"
    done = subprocess.run(
        [SHOTFLOW, "run", str(_spec_file(tmp_path, journal)), "--store", str(tmp_path / "s.zarr"), "--set", option],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith(f"shotflow run: error: {problem}"), done.stderr
    assert read_journal(journal) == [] and not (tmp_path / "s.zarr").exists()


def test_run_with_set_stores_the_overridden_values(tmp_path: Path, terminal: dict[str, str]) -> None:
    store = tmp_path / "s.zarr"
    done = subprocess.run(
        [SHOTFLOW, "run", str(_spec_file(tmp_path)), "--store", str(store), "--set", "offset=1 MHz"]
        + ["--set", "devices.camera.exposure=2 ms"],
        env=terminal,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(open_sequence(store)["detuning"].values, [-1e6, 0.5e6, 2e6])
    stored = load_spec(read_store_spec(store))
    assert stored.parameters == {"offset": "1 MHz"}
    assert stored.devices["camera"].exposure == "2 ms"  # type: ignore[attr-defined]
