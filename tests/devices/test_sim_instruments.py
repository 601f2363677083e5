"""Compile output of the camera, RF source and scope; the camera's physics recovered by a fit."""

import pickle

import numpy as np
import pytest
from scipy.optimize import curve_fit

from devices import DeviceConfigurationError, DeviceNotUsed, Shot, ShotTimeline
from devices.sim import CameraConfig, RFSourceConfig, ScopeConfig
from devices.sim.camera import CameraCompiler, CameraDevice, atom_number, simulate_image
from devices.sim.rf_source import RFSourceCompiler
from devices.sim.scope import ScopeCompiler


def test_camera_pictures_times_and_atom_number(sequence) -> None:
    config = CameraConfig(detuning="detuning", linewidth="500 kHz", pulse_time="pulse", rabi_frequency="50 kHz")
    compiler = CameraCompiler("cam", config, sequence)
    out = compiler.compile_shot_parameters(Shot(0, {"detuning": 250e3, "pulse": 5e-6}))
    assert out["pictures"] == (("atoms", pytest.approx(15e-3)), ("background", pytest.approx(16e-3)))
    assert out["exposure"] == pytest.approx(1e-3)
    # half a linewidth off resonance: 1/2; pulse of a quarter Rabi period: sin^2(pi/4) = 1/2
    assert out["atom_number"] == pytest.approx(1e5 * 0.5 * 0.5)
    assert compiler.compile_shot_parameters(Shot(1, {"detuning": 0.0, "pulse": 10e-6}))["atom_number"] == pytest.approx(
        1e5
    )


def test_camera_without_model_parameters_sees_all_atoms(sequence) -> None:
    out = CameraCompiler("cam", CameraConfig(atoms=123.0), sequence).compile_shot_parameters(Shot(0))
    assert out["atom_number"] == 123.0


def test_camera_not_used_without_its_lane(sequence) -> None:
    with pytest.raises(DeviceNotUsed):
        CameraCompiler("cam", CameraConfig(lane="other"), sequence)


def test_camera_lane_of_the_wrong_kind(sequence) -> None:
    with pytest.raises(ValueError, match="camera lane"):
        CameraCompiler("cam", CameraConfig(lane="coil"), sequence).compile_shot_parameters(Shot(0))


def test_simulated_image_is_deterministic_uint16_with_the_atom_number() -> None:
    image = simulate_image((64, 48), 1e5, 6.0, 100.0, None)
    assert image.dtype == np.uint16 and image.shape == (64, 48)
    assert image.astype(float).sum() - 100.0 * 64 * 48 == pytest.approx(1e5, rel=0.01)
    device = CameraDevice(
        name="cam", faults=CameraConfig().faults, roi=(32, 32), cloud_sigma=4, background=10, noise=True, seed=1
    )
    a, b = device.read_image(5, 0, 1e4), device.read_image(5, 0, 1e4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, device.read_image(6, 0, 1e4))
    assert device.read_image(5, 1, 1e4).mean() < 12  # later pictures: background only


def test_detuning_scan_gives_a_lorentzian_that_a_fit_recovers(sequence) -> None:
    config = CameraConfig(detuning="detuning", resonance="120 kHz", linewidth="500 kHz", seed=3)
    compiler = CameraCompiler("cam", config, sequence)
    device = CameraDevice(**compiler.compile_initialization_parameters())
    detunings = np.linspace(-1.5e6, 1.5e6, 41)
    signal = []
    for index, detuning in enumerate(detunings):
        out = compiler.compile_shot_parameters(Shot(index, {"detuning": float(detuning)}))
        image = device.read_image(index, 0, out["atom_number"])
        signal.append(image.astype(float).sum() - config.background * image.size)

    def lorentzian(d, amplitude, center, fwhm):
        return amplitude / (1 + (2 * (d - center) / fwhm) ** 2)

    (amplitude, center, fwhm), _ = curve_fit(lorentzian, detunings, signal, p0=(max(signal), 0.0, 1e6))
    assert abs(center - 120e3) < 500e3 / 10
    assert fwhm == pytest.approx(500e3, rel=0.1) and amplitude == pytest.approx(1e5, rel=0.05)


def test_atom_number_model_rabi_oscillation() -> None:
    times = np.linspace(0, 40e-6, 9)
    numbers = [atom_number(1.0, None, 0.0, 1.0, t, 50e3) for t in times]
    np.testing.assert_allclose(numbers, np.sin(np.pi * 50e3 * times) ** 2, atol=1e-12)


def test_rf_source_evaluates_per_shot(sequence, make_sequence) -> None:
    compiler = RFSourceCompiler("rf", RFSourceConfig(frequency="f", amplitude="0.5", settle_time="2 ms"), sequence)
    out = compiler.compile_shot_parameters(Shot(0, {"f": 80e6}))
    assert out == {
        "frequency": 80e6,
        "amplitude": 0.5,
        "settle_time": pytest.approx(2e-3),
        "duration": pytest.approx(18e-3),
    }
    empty = make_sequence(ShotTimeline((), (), {}))
    assert (
        RFSourceCompiler("rf", RFSourceConfig(frequency="1 MHz"), empty).compile_shot_parameters(Shot(0))["duration"]
        == 0.0
    )
    with pytest.raises(ValueError, match="'f'"):
        compiler.compile_shot_parameters(Shot(0, {}))  # 'f' is no parameter here


def test_scope_samples_its_source_lane(sequence) -> None:
    out = ScopeCompiler("scope", ScopeConfig(samples=1800, source_lane="coil"), sequence).compile_shot_parameters(
        Shot(0)
    )
    expected = out["expected"]
    assert expected.dtype == np.float32 and expected.shape == (1800,) and out["duration"] == pytest.approx(18e-3)
    assert (expected[:1000] == 1.0).all() and (expected[1600:] == 0.0).all()
    np.testing.assert_allclose(expected[1000:1500], 1.0 - np.arange(500) / 500, atol=1e-5)
    silent = ScopeCompiler("scope", ScopeConfig(samples=10), sequence).compile_shot_parameters(Shot(0))
    assert (silent["expected"] == 0).all()


def test_scope_rejects_unknown_or_non_analog_lanes(sequence) -> None:
    with pytest.raises(DeviceConfigurationError, match="'ghost'"):
        ScopeCompiler("scope", ScopeConfig(source_lane="ghost"), sequence)
    with pytest.raises(ValueError, match="analog"):
        ScopeCompiler("scope", ScopeConfig(source_lane="mot"), sequence).compile_shot_parameters(Shot(0))


@pytest.mark.parametrize(
    "compiler_class, config",
    [
        (CameraCompiler, CameraConfig(detuning="detuning")),
        (RFSourceCompiler, RFSourceConfig(frequency="1 MHz")),
        (ScopeCompiler, ScopeConfig(source_lane="coil")),
    ],
)
def test_compilers_pickle(sequence, compiler_class, config) -> None:
    compiler = compiler_class("dev", config, sequence)
    copy = pickle.loads(pickle.dumps(compiler))
    shot = Shot(2, {"detuning": 1e5})
    a, b = compiler.compile_shot_parameters(shot), copy.compile_shot_parameters(shot)
    assert a.keys() == b.keys()
