"""Validation of sequence descriptions: every bad-input kind is named by its field path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows._errors import SpecError
from flows.run import resolve_store_path
from flows.sequence import SequenceSpec, load_spec

EXAMPLES = Path(__file__).parents[2] / "examples"

TIMELINE = """
timeline:
  steps:
    - {name: load, duration: 10 ms}
    - {name: pulse, duration: 1 us}
  lanes:
    mot: {kind: digital, values: [true, false]}
    coil: {kind: analog, unit: A, values: [0, {ramp: {start: 0 A, stop: 2}}]}
    camera: {kind: camera, values: [null, atoms]}
"""


def spec_text(iteration: str, extra: str = "") -> str:
    return f"name: test\nparameters:\n  f0: 80 MHz\niteration:\n{iteration}\n{extra}"


def problem(text: str) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(text)
    return str(info.value)


@pytest.mark.parametrize("name", ["rabi", "resonance", "scan_2d"])
def test_examples_load(name: str) -> None:
    spec = load_spec(EXAMPLES / f"{name}.yaml")
    assert spec.name == name
    assert spec.timeline.lanes


def test_every_step_kind_validates() -> None:
    spec = load_spec(
        spec_text(
            """
  - declare: {variable: a, value: 1 MHz}
  - linspace: {variable: b, start: 0 s, stop: 1 s, num: 3, shuffle: true, seed: 1, steps: [shot]}
  - arange: {variable: c, start: 0, stop: 3, step: 1, steps: [shot]}
  - values: {variable: d, values: [1 V, 2 V], steps: [shot]}
  - repeat: {count: 2, steps: [shot]}
  - shot
""",
            TIMELINE,
        )
    )
    kinds = [type(s).__name__ if not isinstance(s, str) else s for s in spec.iteration]
    assert kinds == ["DeclareStep", "LinspaceStep", "ArangeStep", "ValuesStep", "RepeatStep", "shot"]


def test_json_and_round_trip() -> None:
    spec = load_spec(EXAMPLES / "scan_2d.yaml")
    text = spec.model_dump_json()
    assert load_spec(text) == spec
    assert SequenceSpec.model_validate(json.loads(text)) == spec


@pytest.mark.parametrize(
    ("iteration", "expected"),
    [
        ("  - foo: {}", "iteration[0]: unknown step kind 'foo'; expected one of: declare, linspace"),
        ("  - shots", "iteration[0]: unknown step kind 'shots'"),
        ("  - {declare: {variable: a, value: 1}, linspace: {}}", "iteration[0]: a step has exactly one key"),
        (
            "  - {linspace: {variable: a, start: 0, stop: 1, num: 3, steps: [{bogus: 1}]}}",
            "iteration[0].linspace.steps[0]: unknown step kind 'bogus'",
        ),
        (
            "  - {declare: {variable: a, value: zz + 1 MHz}}\n  - shot",
            "iteration[0].declare.value: expression 'zz + 1 MHz': unknown variable or unit 'zz'",
        ),
        (
            "  - {declare: {variable: a, value: 5 MHzz}}\n  - shot",
            "iteration[0].declare.value: expression '5 MHzz': unknown variable or unit 'MHzz'",
        ),
        (
            "  - {declare: {variable: a, value: 1 MHz + 1 s}}\n  - shot",
            "iteration[0].declare.value: expression '1 MHz + 1 s': dimension mismatch",
        ),
        (
            "  - {declare: {variable: a, value: '1 +'}}\n  - shot",
            "iteration[0].declare.value: expression '1 +': invalid syntax",
        ),
        (
            "  - {linspace: {variable: a, start: 0, stop: 1, num: 0, steps: [shot]}}",
            "iteration[0].linspace.num: Input should be greater than or equal to 1",
        ),
        (
            "  - {linspace: {variable: a, start: 0 s, stop: 1 MHz, num: 2, steps: [shot]}}",
            "iteration[0].linspace: start (0 s) and stop (1 MHz) have different dimensions",
        ),
        (
            "  - {linspace: {variable: a, start: 0, stop: 1, num: 2, steps: [{arange: {variable: b, start: 0, stop: 1, step: 0, steps: [shot]}}]}}",
            "iteration[0].linspace.steps[0].arange.step: step must not be zero",
        ),
        (
            "  - {arange: {variable: a, start: 1 s, stop: 0 s, step: 1 s, steps: [shot]}}",
            "iteration[0].arange: the loop yields no value",
        ),
        (
            "  - {values: {variable: a, values: [], steps: [shot]}}",
            "iteration[0].values.values: List should have at least 1 item",
        ),
        (
            "  - {values: {variable: a, values: [1, 2], steps: []}}",
            "iteration[0].values.steps: the loop yields no shot",
        ),
        (
            "  - {repeat: {count: 3, steps: [{declare: {variable: a, value: 1}}]}}",
            "iteration[0].repeat.steps: the loop yields no shot",
        ),
        (
            "  - {repeat: {count: 0, steps: [shot]}}",
            "iteration[0].repeat.count: Input should be greater than or equal to 1",
        ),
        ("  - {declare: {variable: a, value: 1}}", "iteration: the sequence yields no shot"),
        (
            "  - {declare: {variable: a, value: b}}\n  - {declare: {variable: b, value: 1}}\n  - shot",
            "iteration[0].declare.value: expression 'b': variable 'b' is not defined at this point",
        ),
        (
            "  - {declare: {variable: f0, value: 1}}\n  - shot",
            "iteration[0].declare.variable: variable 'f0' is already a global parameter",
        ),
        ("  - {declare: {variable: sqrt, value: 1}}\n  - shot", "iteration[0].declare.variable: 'sqrt' is reserved"),
        (
            "  - {declare: {variable: 2x, value: 1}}\n  - shot",
            "iteration[0].declare.variable: '2x' is not a valid variable name",
        ),
        (
            "  - {declare: {variable: a, value: __import__('os')}}\n  - shot",
            "iteration[0].declare.value: expression \"__import__('os')\": strings are not allowed",
        ),
    ],
)
def test_bad_iteration_names_the_field(iteration: str, expected: str) -> None:
    assert expected in problem(spec_text(iteration))


def test_nesting_depth_is_capped() -> None:
    step = "shot"
    for i in range(40):
        step = f"{{repeat: {{count: 1, steps: [{step}]}}}}"
    assert "loops nested deeper than 32 levels" in problem(spec_text(f"  - {step}"))


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        (
            "steps: [{name: a, duration: 1 MHz}]",
            "timeline.steps[0].duration: expression '1 MHz': expected a value in s",
        ),
        (
            "steps: [{name: a, duration: t_unknown}]",
            "timeline.steps[0].duration: expression 't_unknown': unknown variable",
        ),
        (
            "steps: [{name: a, duration: 1 ms}]\n  lanes: {mot: {kind: digital, values: [true, false]}}",
            "timeline.lanes.mot.values: 2 values for 1 timeline steps",
        ),
        (
            "steps: [{name: a, duration: 1 ms}]\n  lanes: {c: {kind: analog, unit: furlongz, values: [1]}}",
            "timeline.lanes.c.analog.unit: unknown unit 'furlongz'",
        ),
        (
            "steps: [{name: a, duration: 1 ms}]\n  lanes: {c: {kind: analog, unit: A, values: [1 s]}}",
            "timeline.lanes.c.values[0]: expression '1 s': expected a value in A",
        ),
        (
            "steps: [{name: a, duration: 1 ms}]\n  lanes: {c: {kind: laser, values: [1]}}",
            "timeline.lanes.c: Input tag 'laser' found using 'kind' does not match",
        ),
        ("steps: [{name: a, duration: 1 ms}, {name: a, duration: 1 ms}]", "duplicate timeline step names: a"),
    ],
)
def test_bad_timeline_names_the_field(timeline: str, expected: str) -> None:
    assert expected in problem(spec_text("  - shot", f"timeline:\n  {timeline}"))


def test_timeline_may_use_loop_variables_defined_at_every_shot() -> None:
    ok = "  - {linspace: {variable: t, start: 1 ms, stop: 2 ms, num: 2, steps: [shot]}}"
    load_spec(spec_text(ok, "timeline:\n  steps: [{name: a, duration: t}]"))
    partial = "  - shot\n" + ok
    text = problem(spec_text(partial, "timeline:\n  steps: [{name: a, duration: t}]"))
    assert "timeline.steps[0].duration: expression 't': variable 't' is not defined at this point" in text


def test_yaml_syntax_error_reports_the_line() -> None:
    assert "line 4" in problem("name: x\niteration:\n  - shot\n  - [unclosed\n")


def test_duplicate_device_names_rejected() -> None:
    text = spec_text(
        "  - shot",
        "devices:\n  rf: {type: sim.rf_source, frequency: 1 MHz}\n  rf: {type: sim.rf_source, frequency: 2 MHz}\n",
    )
    assert "duplicate key 'rf'" in problem(text)


def test_json_duplicate_keys_rejected() -> None:
    assert "duplicate key 'name'" in problem('{"name": "a", "name": "b", "iteration": ["shot"]}')


def test_unknown_device_type_lists_known_types() -> None:
    text = problem(spec_text("  - shot", "devices:\n  laser: {type: acme.laser}\n"))
    assert "devices.laser: unknown device type 'acme.laser'; known types:" in text
    assert "sim.rf_source" in text and "sim.camera" in text


def test_device_expressions_are_checked() -> None:
    text = problem(
        spec_text(
            "  - {linspace: {variable: detuning, start: -1 MHz, stop: 1 MHz, num: 3, steps: [shot]}}",
            "devices:\n  rf: {type: sim.rf_source, frequency: f0 + detunin}\n  cam: {type: sim.camera, exposure: 2 MHz}\n",
        )
    )
    assert "devices.rf.frequency: expression 'f0 + detunin': unknown variable or unit 'detunin'" in text
    assert "devices.cam.exposure: expression '2 MHz': expected a value in s" in text


def test_device_config_fields_validated() -> None:
    text = problem(spec_text("  - shot", "devices:\n  rf: {type: sim.rf_source, frequency: 1 MHz, bogus: 1}\n"))
    assert "devices.rf" in text and "bogus" in text


def test_valid_devices_round_trip() -> None:
    spec = load_spec(
        spec_text(
            "  - {linspace: {variable: detuning, start: -1 MHz, stop: 1 MHz, num: 3, steps: [shot]}}",
            "devices:\n  rf: {type: sim.rf_source, frequency: f0 + detuning}\n",
        )
    )
    assert spec.devices["rf"].frequency == "f0 + detuning"
    dumped = spec.model_dump(mode="json")
    assert dumped["devices"]["rf"]["frequency"] == "f0 + detuning"
    assert SequenceSpec.model_validate(dumped) == spec


def test_schema_offers_registered_device_types() -> None:
    schema = SequenceSpec.model_json_schema()
    device = schema["properties"]["devices"]["additionalProperties"]
    assert device["discriminator"]["propertyName"] == "type"
    types = {choice["properties"]["type"]["const"] for choice in device["oneOf"]}
    assert {"sim.rf_source", "sim.camera"} <= types
    assert "iteration" in schema["required"]


def test_execution_defaults_and_checks() -> None:
    spec = load_spec(spec_text("  - shot"))
    assert spec.execution.lookahead == 4
    assert spec.execution.shot_timeout == "10 s"
    assert spec.execution.retry.max_attempts == 3
    assert spec.execution.retry.retry_on == ["timeout"]
    assert "execution.shot_timeout: expression '10 MHz': expected a value in s" in problem(
        spec_text("  - shot", "execution: {shot_timeout: 10 MHz}")
    )
    assert "execution.lookahead" in problem(spec_text("  - shot", "execution: {lookahead: 0}"))
    assert "execution.retry.retry_on[0]" in problem(spec_text("  - shot", "execution: {retry: {retry_on: [crash]}}"))


def test_spec_name_is_a_safe_folder_name() -> None:
    assert "name: '../etc' is not a valid sequence name" in problem("name: ../etc\niteration: [shot]\n")


def test_store_path(tmp_path: Path) -> None:
    spec = load_spec(spec_text("  - shot"))
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    path = resolve_store_path(spec, results_root=tmp_path, now=now)
    assert path == tmp_path / "results" / "test" / "2026-01-02T03-04-05.zarr"
    path.mkdir(parents=True)
    assert resolve_store_path(spec, results_root=tmp_path, now=now).name == "2026-01-02T03-04-05-1.zarr"
    assert resolve_store_path(spec, store=tmp_path / "x.zarr") == tmp_path / "x.zarr"


@pytest.mark.parametrize("root", ["../outside", "/etc", "a/../../b"])
def test_store_path_cannot_escape_results_root(root: str, tmp_path: Path) -> None:
    spec = load_spec(spec_text("  - shot", f"storage: {{root: '{root}'}}"))
    with pytest.raises(SpecError, match="storage.root"):
        resolve_store_path(spec, results_root=tmp_path / "results")
    assert resolve_store_path(spec, results_root=None).is_absolute()  # the CLI may write anywhere
