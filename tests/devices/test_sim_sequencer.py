import pickle

import numpy as np
import pytest

from devices import (
    AnalogLane,
    DeviceConfigurationError,
    DeviceNotUsed,
    DigitalLane,
    Ramp,
    Shot,
    ShotTimeline,
)
from devices.sim import SequencerConfig
from devices.sim.sequencer import SequencerCompiler


def compile_shot(sequence, **config):
    compiler = SequencerCompiler("seq", SequencerConfig(**config), sequence)
    return compiler.compile_shot_parameters(Shot(0, {}))


def test_samples_digital_and_analog_lanes(sequence) -> None:
    out = compile_shot(sequence, channels=["mot", "coil", "shutter"], time_step="10 us")
    # 10 ms + 5 ms + 1 ms + 2 ms at 10 us
    assert out["n_samples"] == 1800 and out["time_step"] == pytest.approx(10e-6)
    assert out["duration"] == pytest.approx(18e-3)
    assert out["digital_channels"] == ("mot", "shutter") and out["analog_channels"] == ("coil",)
    digital, analog = out["digital"], out["analog"]
    assert digital.dtype == np.uint8 and digital.shape == (2, 1800)
    assert analog.dtype == np.float32 and analog.shape == (1, 1800)
    mot, shutter = digital
    assert mot[:1000].all() and not mot[1000:].any()
    assert not shutter[:1000].any() and shutter[1000:1600].all() and not shutter[1600:].any()
    coil = analog[0]
    assert (coil[:1000] == 1.0).all() and (coil[1600:] == 0.0).all()
    # linear ramp 1 -> 0 over 500 samples
    np.testing.assert_allclose(coil[1000:1500], 1.0 - np.arange(500) / 500, rtol=0, atol=1e-6)


def test_one_second_at_one_microsecond_is_a_million_samples(make_sequence) -> None:
    timeline = ShotTimeline(
        ("a", "b"),
        (0.5, 0.5),
        {"ttl": DigitalLane((True, False)), "ao": AnalogLane((Ramp(-1.0, 1.0), 2.0))},
    )
    out = compile_shot(make_sequence(timeline), channels=["ttl", "ao"])
    assert out["n_samples"] == 1_000_000
    assert out["digital"].sum() == 500_000
    ramp = out["analog"][0, :500_000]
    assert ramp[0] == -1.0 and ramp[250_000] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(ramp) > 0) and (out["analog"][0, 500_000:] == 2.0).all()


def test_step_boundaries_do_not_drift(make_sequence) -> None:
    timeline = ShotTimeline(("a", "b", "c"), (1.4e-6, 1.4e-6, 1.4e-6), {"ttl": DigitalLane((True, False, True))})
    out = compile_shot(make_sequence(timeline), channels=["ttl"])
    assert out["n_samples"] == 4  # rint(4.2) — total time preserved, not 3 * rint(1.4)


def test_not_used_when_no_channel_is_a_lane(sequence) -> None:
    with pytest.raises(DeviceNotUsed):
        SequencerCompiler("seq", SequencerConfig(channels=["nope"]), sequence)


def test_unknown_channel_among_known_ones_is_rejected_at_init(sequence) -> None:
    with pytest.raises(DeviceConfigurationError, match="'typo'") as info:
        SequencerCompiler("seq", SequencerConfig(channels=["mot", "typo"]), sequence)
    assert "known lanes" in str(info.value)


def test_camera_lane_is_not_a_channel(sequence) -> None:
    with pytest.raises(ValueError, match="CameraLane"):
        compile_shot(sequence, channels=["camera"])


def test_compiler_pickles_and_runs_in_process(sequence) -> None:
    compiler = SequencerCompiler("seq", SequencerConfig(channels=["mot", "coil"]), sequence)
    assert SequencerCompiler.compile_in_process is True
    copy = pickle.loads(pickle.dumps(compiler))
    a, b = compiler.compile_shot_parameters(Shot(1)), copy.compile_shot_parameters(Shot(1))
    np.testing.assert_array_equal(a["analog"], b["analog"])


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SequencerConfig(channels=[])
    with pytest.raises(ValueError):
        SequencerConfig(channels=["a"], unknown=1)
    assert SequencerConfig(channels=["a"]).type == "sim.sequencer"
