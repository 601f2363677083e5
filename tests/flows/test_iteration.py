"""Walking the iteration: shot order, values, counting, units and the runtime context."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest

from devices import AnalogLane, CameraLane, DigitalLane, Ramp, SequenceContext, Shot
from flows._errors import ExpressionError
from flows.sequence import SequenceRuntime, count_shots, iter_shots, load_spec, parameter_units

EXAMPLES = Path(__file__).parents[2] / "examples"


def spec(iteration: str, extra: str = "", parameters: str = "f0: 80 MHz"):
    return load_spec(f"name: t\nparameters: {{{parameters}}}\niteration:\n{iteration}\n{extra}")


def values(iteration: str, name: str, **kw) -> list[float | bool]:
    return [shot.parameters[name] for shot in iter_shots(spec(iteration, **kw))]


def test_declare_and_shot() -> None:
    shots = list(iter_shots(spec("  - {declare: {variable: a, value: f0 + 200 kHz}}\n  - shot\n  - shot")))
    assert [s.index for s in shots] == [0, 1]
    assert shots[0].parameters == {"a": pytest.approx(80.2e6)}  # globals are not shot parameters


def test_linspace_matches_numpy() -> None:
    got = values("  - {linspace: {variable: d, start: -2 MHz, stop: 2 MHz, num: 7, steps: [shot]}}", "d")
    assert got == list(np.linspace(-2e6, 2e6, 7))
    assert values("  - {linspace: {variable: d, start: 3 s, stop: 4 s, num: 1, steps: [shot]}}", "d") == [3.0]


def test_arange_matches_numpy() -> None:
    got = values("  - {arange: {variable: t, start: 0 ms, stop: 1 ms, step: 0.1 ms, steps: [shot]}}", "t")
    assert got == pytest.approx(list(np.arange(0, 1e-3, 1e-4)))
    assert len(got) == len(np.arange(0, 1e-3, 1e-4))
    down = values("  - {arange: {variable: t, start: 3, stop: 0, step: -1, steps: [shot]}}", "t")
    assert down == [3.0, 2.0, 1.0]


def test_values_with_units_and_bools() -> None:
    assert values("  - {values: {variable: p, values: ['10 %', 0.5, 1], steps: [shot]}}", "p") == [0.1, 0.5, 1.0]
    flags = values("  - {values: {variable: flag, values: [true, false], steps: [shot]}}", "flag")
    assert flags == [True, False] and all(isinstance(f, bool) for f in flags)


def test_repeat() -> None:
    shots = list(iter_shots(spec("  - {repeat: {count: 3, steps: [{declare: {variable: a, value: 1}}, shot]}}")))
    assert [s.index for s in shots] == [0, 1, 2]


def test_nesting_order() -> None:
    shots = list(
        iter_shots(
            spec(
                "  - {values: {variable: a, values: [1, 2], steps: ["
                "{values: {variable: b, values: [10, 20, 30], steps: [shot]}}]}}"
            )
        )
    )
    assert [(s.parameters["a"], s.parameters["b"]) for s in shots] == [
        (a, b) for a in (1.0, 2.0) for b in (10.0, 20.0, 30.0)
    ]


def test_inner_loop_starts_at_outer_variable() -> None:
    shots = list(
        iter_shots(
            spec(
                "  - {values: {variable: a, values: [1 ms, 2 ms], steps: ["
                "{arange: {variable: b, start: a, stop: 4 ms, step: 1 ms, steps: [shot]}}]}}"
            )
        )
    )
    pairs = [(round(s.parameters["a"] * 1e3), round(s.parameters["b"] * 1e3)) for s in shots]
    assert pairs == [(1, 1), (1, 2), (1, 3), (2, 2), (2, 3)]


def test_loop_variable_keeps_last_value() -> None:
    shots = list(
        iter_shots(
            spec(
                "  - {linspace: {variable: x, start: 0 V, stop: 3 V, num: 4, steps: [shot]}}\n"
                "  - {declare: {variable: y, value: 2 * x}}\n"
                "  - shot"
            )
        )
    )
    assert shots[-1].parameters["x"] == 3.0
    assert shots[-1].parameters["y"] == 6.0


def test_shuffle_is_reproducible() -> None:
    def order(seed: int) -> list[float]:
        return values(
            f"  - {{arange: {{variable: i, start: 0, stop: 20, step: 1, shuffle: true, seed: {seed}, steps: [shot]}}}}",
            "i",
        )

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert sorted(order(1)) == [float(i) for i in range(20)]
    assert order(1) != sorted(order(1))


def test_shuffle_shuffles_the_loop_not_nested_shots() -> None:
    got = [
        (s.parameters["a"], s.parameters["b"])
        for s in iter_shots(
            spec(
                "  - {values: {variable: a, values: [1, 2, 3, 4], shuffle: true, seed: 3, steps: ["
                "{values: {variable: b, values: [1, 2], steps: [shot]}}]}}"
            )
        )
    ]
    assert [b for _, b in got] == [1.0, 2.0] * 4
    assert [a for a, _ in got[::2]] == [a for a, _ in got[1::2]]


def test_count_shots_exact() -> None:
    for name, expected in [("rabi", 25), ("resonance", 41)]:
        s = load_spec(EXAMPLES / f"{name}.yaml")
        assert count_shots(s) == expected == sum(1 for _ in iter_shots(s))
    s = spec(
        "  - {declare: {variable: n, value: 3}}\n"
        "  - {repeat: {count: 2, steps: [shot, {linspace: {variable: a, start: 0, stop: n, num: 5, steps: [shot]}}]}}\n"
        "  - {arange: {variable: b, start: 0, stop: 1, step: 0.25, steps: [{values: {variable: c, values: [1, 2], steps: [shot]}}]}}"
    )
    assert count_shots(s) == 2 * (1 + 5) + 4 * 2 == sum(1 for _ in iter_shots(s))


def test_count_shots_unknown_when_bounds_depend_on_loop_variables() -> None:
    s = load_spec(EXAMPLES / "scan_2d.yaml")
    assert count_shots(s) is None
    assert sum(1 for _ in iter_shots(s)) == 28


def test_huge_scan_counted_and_streamed_lazily() -> None:
    s = spec(
        "  - {linspace: {variable: a, start: 0 Hz, stop: 1 MHz, num: 100000, steps: ["
        "{linspace: {variable: b, start: 0 s, stop: 1 s, num: 10000, steps: [shot]}}]}}"
    )
    assert count_shots(s) == 10**9
    first = list(itertools.islice(iter_shots(s), 3))
    assert [shot.index for shot in first] == [0, 1, 2]


def test_parameter_units() -> None:
    assert parameter_units(load_spec(EXAMPLES / "resonance.yaml")) == {
        "rf_power": "W",
        "detuning": "Hz",
        "rf_frequency": "Hz",
    }
    assert parameter_units(load_spec(EXAMPLES / "scan_2d.yaml")) == {"trap_depth": "", "time_of_flight": "s"}


def test_runtime_error_names_the_field() -> None:
    s = spec("  - {values: {variable: a, values: [1, 0], steps: [{declare: {variable: b, value: 1 / a}}, shot]}}")
    with pytest.raises(
        ExpressionError, match=r"iteration\[0\]\.values\.steps\[0\]\.declare\.value: .*division by zero"
    ):
        list(iter_shots(s))


def test_calibrated_values() -> None:
    s = spec("  - {declare: {variable: f, value: calibrated.f0 + 1 MHz}}\n  - shot")
    assert next(iter(iter_shots(s, calibrated={"f0": "80 MHz"}))).parameters["f"] == pytest.approx(81e6)
    assert count_shots(s) == 1


TIMELINE = """
timeline:
  steps:
    - {name: load, duration: 10 ms}
    - {name: pulse, duration: t}
  lanes:
    mot: {kind: digital, values: [true, false]}
    coil: {kind: analog, unit: A, values: [2, {ramp: {start: 2 A, stop: 2 A * t / 1 ms}}]}
    camera: {kind: camera, values: [null, atoms]}
"""


def test_runtime_context() -> None:
    s = spec("  - {linspace: {variable: t, start: 1 ms, stop: 2 ms, num: 2, steps: [shot]}}", TIMELINE)
    runtime = SequenceRuntime(s)
    assert isinstance(runtime, SequenceContext)
    assert runtime.name == "t"
    assert runtime.globals == {"f0": 80e6}
    shot = list(iter_shots(s))[1]
    assert runtime.evaluate("f0 + 1 kHz * t / 1 ms", shot) == pytest.approx(80.002e6)
    assert runtime.evaluate("f0", unit="MHz") == pytest.approx(80.0)
    with pytest.raises(ValueError, match="expected a value in s"):
        runtime.evaluate("f0", shot, unit="s")
    timeline = runtime.timeline(shot)
    assert timeline.step_names == ("load", "pulse")
    assert timeline.durations == pytest.approx((0.01, 0.002))
    assert timeline.lanes["mot"] == DigitalLane((True, False))
    assert timeline.lanes["camera"] == CameraLane((None, "atoms"))
    coil = timeline.lanes["coil"]
    assert isinstance(coil, AnalogLane) and coil.unit == "A"
    assert coil.values[0] == 2.0 and coil.values[1] == Ramp(2.0, pytest.approx(4.0))


def test_runtime_pickles() -> None:
    s = spec("  - {linspace: {variable: t, start: 1 ms, stop: 2 ms, num: 2, steps: [shot]}}", TIMELINE)
    runtime = SequenceRuntime(s, calibrated={"x": 1.0})
    shot = Shot(0, {"t": 0.0015})
    before = runtime.timeline(shot)
    clone = pickle.loads(pickle.dumps(runtime))
    assert clone.timeline(shot) == before
    assert clone.evaluate("calibrated.x + 1") == 2.0


def test_negative_duration_is_an_error() -> None:
    s = spec("  - {values: {variable: t, values: [1 ms, -1 ms], steps: [shot]}}", TIMELINE)
    runtime = SequenceRuntime(s)
    with pytest.raises(ExpressionError, match=r"timeline.steps\[1\].duration"):
        runtime.timeline(Shot(1, {"t": -0.001}))


def test_loop_variables_without_any_global_parameter() -> None:
    """A spec with no `parameters` reads loop variables in declarations and in nested loops
    (an empty namespace was once replaced by a fresh one, losing the loop's value)."""
    text = (
        "name: t\n"
        "iteration:\n"
        "  - {arange: {variable: x, start: 1 ms, stop: 3 ms, step: 1 ms, steps: [\n"
        "      {declare: {variable: y, value: 2 * x}},\n"
        "      {arange: {variable: z, start: x, stop: 3 ms, step: 1 ms, steps: [shot]}}]}}\n"
    )
    shots = list(iter_shots(load_spec(text)))
    got = [tuple(round(s.parameters[n] * 1e3) for n in ("x", "y", "z")) for s in shots]
    assert got == [(1, 2, 1), (1, 2, 2), (2, 4, 2)]


def test_shots_record_their_position_on_each_enclosing_loop_in_scan_order() -> None:
    loops = (
        "  - {values: {variable: p, values: [1, 2], steps: [\n"
        "      {linspace: {variable: d, start: 0 Hz, stop: 3 Hz, num: 4, shuffle: true, seed: 5, steps: [\n"
        "        {repeat: {count: 2, steps: [shot]}}]}}]}}\n"
        "  - shot"
    )
    shots = list(iter_shots(spec(loops)))
    inner = shots[:-1]
    assert [s.indices["p"] for s in inner] == [0] * 8 + [1] * 8
    assert [s.indices["repeat"] for s in inner] == [0, 1] * 8
    # shuffled: the index is the position in the unshuffled range, so it follows the value
    assert all(s.indices["d"] == s.parameters["d"] for s in inner)
    assert [s.indices["d"] for s in inner[::2]] != sorted(s.indices["d"] for s in inner[::2])
    assert shots[-1].indices == {}  # a shot after the loops is on no axis
