"""The plan of a sequence: axes, units, counts, and one analysis per spec (and per calibration)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import pickle
from pathlib import Path

import pytest

import flows.sequence._analysis as analysis
from devices import Shot
from flows.sequence import (
    Axis,
    SequencePlan,
    SequenceRuntime,
    SequenceSpec,
    calibrated_references,
    count_shots,
    evaluate_globals,
    iter_shots,
    load_spec,
    parameter_units,
    plan_lines,
    plan_sequence,
)

EXAMPLES = Path(__file__).parents[2] / "examples"

SCAN_WITH_REPEAT = """\
name: scan
parameters: {f0: 80 MHz, span: 2 MHz}
iteration:
  - repeat:
      count: 3
      steps:
        - linspace:
            variable: detuning
            start: -span / 2
            stop: span / 2
            num: 5
            steps:
              - declare: {variable: rf, value: f0 + detuning}
              - arange: {variable: t, start: 0 us, stop: 40 us, step: 10 us, shuffle: true, seed: 7, steps: [shot]}
"""


@pytest.fixture
def plans_built(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every plan the analysis builds from now on, by the calibration values it used."""
    built: list[object] = []
    build = analysis.build_plan

    def counting(spec: SequenceSpec, calibrated: object) -> SequencePlan:
        built.append(calibrated)
        return build(spec, calibrated)

    monkeypatch.setattr(analysis, "build_plan", counting)
    return built


def test_axes_of_a_2d_scan_with_repeat_outer_to_inner() -> None:
    plan = plan_sequence(load_spec(SCAN_WITH_REPEAT))
    assert [(a.name, a.kind, a.depth, a.size, a.unit, a.shuffled) for a in plan.axes] == [
        ("repeat", "repeat", 0, 3, "", False),
        ("detuning", "linspace", 1, 5, "Hz", False),
        ("t", "arange", 2, 4, "s", True),
    ]
    assert [a.parent for a in plan.axes] == [None, 0, 1]
    assert plan.axes[2].seed == 7 and plan.axes[0].variables == ()
    assert plan.shot_count == 3 * 5 * 4 == len(list(iter_shots(plan.spec)))


def test_axes_record_is_json_safe() -> None:
    record = plan_sequence(load_spec(SCAN_WITH_REPEAT)).axes_record()
    assert json.loads(json.dumps(record)) == record
    assert record[1] == {
        "name": "detuning",
        "variables": ["detuning"],
        "kind": "linspace",
        "depth": 1,
        "size": 5,
        "unit": "Hz",
        "shuffled": False,
        "seed": None,
        "path": "iteration[0].repeat.steps[0].linspace",
        "description": "linspace detuning: 5 values from -span / 2 to span / 2",
        "parent": 0,
    }

    def scalars(value: object) -> bool:
        if isinstance(value, list):
            return all(scalars(v) for v in value)
        return value is None or isinstance(value, (str, int, float, bool))

    assert all(scalars(v) for axis in record for v in axis.values())


def test_nested_repeats_have_distinct_names_that_avoid_variables() -> None:
    spec = load_spec(
        "name: r\niteration:\n"
        "  - {repeat: {count: 2, steps: [{declare: {variable: repeat_2, value: 1}},"
        " {repeat: {count: 3, steps: [{repeat: {count: 4, steps: [shot]}}]}}]}}\n"
    )
    plan = plan_sequence(spec)
    assert [(a.name, a.depth, a.size) for a in plan.axes] == [("repeat", 0, 2), ("repeat_3", 1, 3), ("repeat_4", 2, 4)]
    assert plan.shot_count == 24


def test_shuffled_axis_is_flagged() -> None:
    spec = load_spec(
        "name: s\niteration:\n"
        "  - {values: {variable: p, values: [1 mW, 2 mW, 3 mW], shuffle: true, seed: 3, steps: [shot]}}\n"
    )
    (axis,) = plan_sequence(spec).axes
    assert axis == Axis(
        name="p",
        variables=("p",),
        kind="values",
        depth=0,
        size=3,
        unit="W",
        shuffled=True,
        seed=3,
        path="iteration[0].values",
        description="values p: 3 values [1 mW, 2 mW, 3 mW], shuffled",
        parent=None,
    )
    assert sorted(s.parameters["p"] for s in iter_shots(spec)) == pytest.approx([1e-3, 2e-3, 3e-3])


def test_an_axis_whose_size_depends_on_an_outer_loop_has_no_size() -> None:
    plan = plan_sequence(load_spec(EXAMPLES / "scan_2d.yaml"))
    assert plan.shot_count is None and count_shots(plan.spec) is None
    assert any(axis.size is None for axis in plan.axes)
    assert plan.axes[0].size is not None


def test_units_and_namespace_order() -> None:
    plan = plan_sequence(load_spec(SCAN_WITH_REPEAT))
    assert plan.namespace == ("f0", "span", "detuning", "rf", "t")
    assert plan.globals == ("f0", "span") and plan.variables == ("detuning", "rf", "t")
    assert plan.units == {"f0": "Hz", "span": "Hz", "detuning": "Hz", "rf": "Hz", "t": "s"}
    assert plan.parameter_units() == parameter_units(plan.spec) == {"detuning": "Hz", "rf": "Hz", "t": "s"}


def test_one_analysis_per_spec_and_run(plans_built: list[object]) -> None:
    spec = load_spec(SCAN_WITH_REPEAT)
    assert plans_built == [None]  # validation made the plan
    plan = plan_sequence(spec)
    assert plan_sequence(spec) is plan and not plan.problems
    assert count_shots(spec) == 60 and calibrated_references(spec) == set()
    parameter_units(spec, calibrated={"unused": 1.0})
    evaluate_globals(spec)
    list(itertools.islice(iter_shots(spec, calibrated={}), 3))
    list(plan_lines(spec))
    runtime = SequenceRuntime(spec)
    assert runtime.plan is plan and runtime.units["t"] == "s"
    assert plans_built == [None]


def test_calibration_values_make_one_more_plan_and_only_when_they_differ(plans_built: list[object]) -> None:
    spec = load_spec(EXAMPLES / "calibrated_scan.yaml")
    assert calibrated_references(spec) == {"resonance"}
    calibrated = {"resonance": "80 MHz", "unrelated": "1 s"}
    runtime = SequenceRuntime(spec, calibrated=calibrated)
    assert count_shots(spec, calibrated=calibrated) == 11
    assert parameter_units(spec, calibrated=calibrated)["rf_frequency"] == "Hz"
    assert parameter_units(spec)["rf_frequency"] == ""  # unknown without the calibration
    list(iter_shots(spec, calibrated=dict(calibrated)))
    assert plan_sequence(spec, {"resonance": "80 MHz"}) is runtime.plan  # other calibrations change nothing
    assert plans_built == [None, {"resonance": "80 MHz"}]
    assert plan_sequence(spec, {"resonance": "81 MHz"}) is not runtime.plan
    assert len(plans_built) == 3


def test_a_pickled_runtime_brings_its_plan(plans_built: list[object], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_spec(SCAN_WITH_REPEAT)
    runtime = SequenceRuntime(spec, calibrated={"x": 2.0})
    payload = pickle.dumps(runtime)

    def refuse(*_: object) -> SequencePlan:
        raise AssertionError("a worker analysed the spec again")

    monkeypatch.setattr(analysis, "build_plan", refuse)
    worker = pickle.loads(payload)  # what a compile worker process receives
    shot = Shot(0, {"detuning": -1e6, "rf": 79e6, "t": 1e-5})
    assert worker.evaluate("rf + calibrated.x * 1 Hz", shot) == pytest.approx(79e6 + 2)
    assert worker.units == runtime.units and worker.globals == runtime.globals
    assert plan_sequence(worker.spec) is worker.plan
    assert plans_built == [None]


def test_the_cache_is_invisible_to_equality_serialisation_and_schema() -> None:
    spec = load_spec(SCAN_WITH_REPEAT)
    fresh = SequenceSpec.model_validate(spec.model_dump())
    plan_sequence(spec, {"x": 1})
    assert spec == fresh == pickle.loads(pickle.dumps(spec))
    assert spec.model_dump_json() == fresh.model_dump_json()
    assert "_plans" not in json.dumps(SequenceSpec.model_json_schema())


def test_a_modified_copy_is_planned_again() -> None:
    spec = load_spec(SCAN_WITH_REPEAT)
    assert count_shots(spec) == 60
    data = spec.model_dump()
    data["iteration"][0]["repeat"]["count"] = 1
    copy = spec.model_copy(update={"iteration": SequenceSpec.model_validate(data).iteration})
    assert count_shots(copy) == 20 and count_shots(spec) == 60
    assert plan_sequence(copy).spec is copy


def test_the_plan_is_frozen() -> None:
    plan = plan_sequence(load_spec(SCAN_WITH_REPEAT))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.shot_count = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.axes[0].size = 1  # type: ignore[misc]


def test_a_bound_the_checks_let_through_leaves_the_size_unknown() -> None:
    """A boolean linspace bound passes validation (as before the plan); the plan must not fail on it."""
    spec = load_spec(
        "name: b\niteration:\n  - {linspace: {variable: x, start: true, stop: false, num: 2, steps: [shot]}}"
    )
    assert count_shots(spec) is None and plan_sequence(spec).axes[0].size is None
