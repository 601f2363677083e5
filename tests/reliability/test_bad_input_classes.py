"""Classes of bad input (issue 11), each refused at its root and tested with generated cases.

1. Names become paths: one name rule for every name a spec declares, and for data labels at run time.
2. What used to be refused only after the devices were entered is refused at load/plan time.
3. Values that overflow once converted to SI are refused; ``plan --json`` is strict JSON.
4. Work before the first shot is bounded by the spec's text, never by the numbers in it.

Each class: generated cases through :func:`load_spec` (no Prefect, no device), then a few
through the user's command (``shotflow plan FILE``: exit 2, one message naming the field).
"""

from __future__ import annotations

import itertools
import json
import keyword
import math
import re
import subprocess
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest
from _rlab import lab_dict
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from prefect.types.names import BANNED_CHARACTERS
from simlab import SHOTFLOW

import devices
from devices import ShotContextError, ShotExchange
from devices._shot_context import LABEL_PATTERN, MAX_LABEL_LENGTH
from flows._errors import SpecError
from flows.sequence import count_shots, iter_shots, load_spec, plan_lines
from flows.sequence._fields import MAX_NAME_LENGTH, NAME_PATTERN, STORE_NAMES
from flows.sequence._load import MAX_VALUES
from flows.sequence._shuffle import Permutation
from flows.sequence._spec import MAX_ATTEMPTS, MAX_COMPILE_WORKERS, MAX_LOOKAHEAD, MAX_SHOTS_PER_TASK
from flows.sequence._step_kind import MAX_SHOTS
from tasks.store._layout import RESERVED_NAMES

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# every kind of character: ASCII punctuation, separators, controls, unicode letters, surrogates excluded
NAMES = st.one_of(
    st.text(min_size=0, max_size=70),
    st.text(alphabet="abcXYZ019_-./\\%&<>: \t\n\x00\x7fé中", min_size=1, max_size=12),
    st.sampled_from(["at/oms", "camera.atoms", "a%b", "..", "../up", "x" * 65, "x" * 64, "ok-1", "ok_2", "2x", "é"]),
)


def _is_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name) is not None


def _refusal(spec: dict[str, Any]) -> str | None:
    try:
        load_spec(spec)
    except SpecError as exc:
        return str(exc)
    return None


def _strict_json(line: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"not strict JSON: {constant} in {line}")

    return json.loads(line, parse_constant=refuse)


def _plan_file(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return subprocess.run(
        [SHOTFLOW, "plan", *args, str(path)], capture_output=True, text=True, check=False, timeout=120
    )


def _assert_refused(result: subprocess.CompletedProcess[str], *named: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for text in named:
        assert text in result.stderr, f"{result.stderr!r} does not name {text!r}"


# --- 1. names become paths --------------------------------------------------------------------


def _place_device(spec: dict[str, Any], name: str) -> str:
    spec["devices"][name] = spec["devices"].pop("rf")
    return "devices"


def _place_lane(spec: dict[str, Any], name: str) -> str:
    spec["timeline"]["lanes"][name] = {"kind": "digital", "values": [True, False]}
    return "timeline.lanes"


def _place_picture(spec: dict[str, Any], name: str) -> str:
    spec["timeline"]["lanes"]["camera"]["values"][1] = name
    return "timeline.lanes.camera"


def _place_step(spec: dict[str, Any], name: str) -> str:
    spec["timeline"]["steps"][0]["name"] = name
    return "timeline.steps[0].name"


PLACES = {"device": _place_device, "lane": _place_lane, "picture": _place_picture, "step": _place_step}
TAKEN = {"sequencer", "camera", "rf", "mot", "coil", "image", "detuning", "offset", *STORE_NAMES}


@QUICK
@given(place=st.sampled_from(sorted(PLACES)), name=NAMES)
def test_every_declared_name_follows_the_one_rule(place: str, name: str) -> None:
    assume(name not in TAKEN)
    spec = lab_dict()
    field = PLACES[place](spec, name)
    refused = _refusal(spec)
    if _is_name(name):
        assert refused is None, refused
        assert not any(c in name for c in BANNED_CHARACTERS), "Prefect would refuse shotflow-device-<name>"
        assert f"{name}.y".count(".") == 1, "<device>.<label> must split in exactly one way"
    else:
        assert refused is not None, f"{name!r} accepted as a {place} name"
        assert field in refused and "is not a valid name" in refused, refused
        assert "Traceback" not in refused and len(refused) < 600


@QUICK
@given(name=NAMES)
def test_variable_names_are_identifiers_and_never_store_names(name: str) -> None:
    assume(name not in {"offset", "detuning", "rf", "camera", "sequencer"})
    spec = lab_dict()
    spec["parameters"][name] = "1"
    refused = _refusal(spec)
    valid = (
        len(name) <= MAX_NAME_LENGTH
        and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name) is not None
        and not keyword.iskeyword(name)
        and name not in STORE_NAMES
    )
    if refused is None:
        assert valid, f"{name!r} accepted as a variable"
    elif valid:  # the other refusals: functions, constants, 'calibrated', a unit the spec writes as one
        assert "reserved" in refused or "named like the unit" in refused, refused
    else:
        assert "parameters" in refused, refused


@QUICK
@given(name=NAMES)
def test_sequence_names_are_one_safe_folder(name: str) -> None:
    spec = lab_dict()
    spec["name"] = name
    refused = _refusal(spec)
    if refused is None:
        assert "/" not in name and "\\" not in name and ".." not in name and len(name) <= 100
        assert name == name.strip(" .") and name.isprintable() and name.isascii() and name
    else:
        assert refused.splitlines()[-1].startswith("name: "), refused


async def _signal(label: str) -> dict[str, Any]:
    exchange = ShotExchange(3, {}, ["camera"])
    exchange.context_for("camera").signal_data(label, 1)
    return exchange.data


@QUICK
@given(label=NAMES)
def test_data_labels_follow_the_rule_when_signalled(label: str) -> None:
    if _is_name(label):
        assert anyio.run(_signal, label) == {f"camera.{label}": 1}
    else:
        with pytest.raises(ShotContextError, match="device 'camera': data label .* is not a valid name"):
            anyio.run(_signal, label)


def test_the_name_rule_is_the_same_in_devices_and_the_store_names_match() -> None:
    assert LABEL_PATTERN == NAME_PATTERN and MAX_LABEL_LENGTH == MAX_NAME_LENGTH
    assert STORE_NAMES == RESERVED_NAMES


def test_a_device_cannot_share_its_name_with_a_variable_or_the_store() -> None:
    for name in ["detuning", "offset", *sorted(STORE_NAMES)]:
        spec = lab_dict()
        spec["devices"][name] = spec["devices"].pop("rf")
        refused = _refusal(spec)
        assert refused is not None and f"devices.{name}" in refused, refused


def test_names_through_the_command(tmp_path: Path) -> None:
    text = (
        "name: x\niteration: [shot]\n"
        "timeline:\n  steps: [{name: image, duration: 1 ms}]\n"
        "  lanes: {camera: {kind: camera, values: [at/oms]}}\n"
        "devices: {camera.atoms: {type: sim.camera}}\n"
    )
    _assert_refused(_plan_file(tmp_path, text), "timeline.lanes.camera", "'at/oms'", "devices['camera.atoms']")


# --- 2. refused at load time, not with the devices entered --------------------------------------


@QUICK
@given(name=st.sampled_from(sorted(STORE_NAMES)), where=st.sampled_from(["global", "declare", "loop"]))
def test_store_bookkeeping_names_are_refused_as_variables(name: str, where: str) -> None:
    spec = lab_dict()
    if where == "global":
        spec["parameters"][name] = "1"
        field = f"parameters.{name}"
    elif where == "declare":
        spec["iteration"].insert(0, {"declare": {"variable": name, "value": "1"}})
        field = "iteration[0].declare.variable"
    else:
        spec["iteration"][0]["linspace"]["variable"] = name
        field = "iteration[0].linspace.variable"
    refused = _refusal(spec)
    assert refused is not None and field in refused and "bookkeeping" in refused, refused


@QUICK
@given(
    magnitude=st.one_of(st.floats(-1e6, 0), st.floats(0, 1e6)),
    unit=st.sampled_from(["s", "ms", "us", "ns"]),
)
def test_shot_timeout_must_be_positive(magnitude: float, unit: str) -> None:
    spec = lab_dict()
    spec["execution"]["shot_timeout"] = f"{magnitude!r} {unit}"
    refused = _refusal(spec)
    if magnitude > 0:
        assert refused is None, refused
    else:
        assert refused is not None and "execution.shot_timeout" in refused and "positive" in refused, refused


BOUNDS = {
    "lookahead": (1, MAX_LOOKAHEAD),
    "shots_per_task": (1, MAX_SHOTS_PER_TASK),
    "compile_workers": (1, MAX_COMPILE_WORKERS),
}


@QUICK
@given(field=st.sampled_from([*sorted(BOUNDS), "max_attempts"]), value=st.integers(-5, 2**70))
def test_execution_counts_are_bounded(field: str, value: int) -> None:
    spec = lab_dict()
    low, high = BOUNDS.get(field, (1, MAX_ATTEMPTS))
    if field == "max_attempts":
        spec["execution"]["retry"] = {"max_attempts": value}
        path = "execution.retry.max_attempts"
    else:
        spec["execution"][field] = value
        path = f"execution.{field}"
    refused = _refusal(spec)
    if low <= value <= high:
        assert refused is None, refused
    else:
        assert refused is not None and path in refused, refused


@QUICK
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_device_lock_timeout_is_a_finite_positive_number(value: float) -> None:
    spec = lab_dict()
    spec["execution"]["device_lock_timeout"] = value
    refused = _refusal(spec)
    assert (refused is None) == (math.isfinite(value) and value > 0), refused


@QUICK
@given(unit=st.sampled_from(["us", "ms", "s", "MHz", "kHz", "mW", "V", "nm"]), used=st.booleans())
def test_a_variable_named_like_a_unit_the_spec_writes_is_refused(unit: str, used: bool) -> None:
    spec = lab_dict()
    spec["parameters"][unit] = "1 ms"
    if used:
        spec["timeline"]["steps"][0]["duration"] = f"(2 {unit}) / {unit} * 1 ms"
    configured = [devices.get_device_type(d["type"]).configuration.model_validate(d) for d in spec["devices"].values()]
    text = json.dumps(spec) + json.dumps([c.model_dump(mode="json") for c in configured])  # the defaults too
    written = re.search(rf"[0-9.] *{unit}\b", text) is not None  # "10 us" in the lab's sequencer
    refused = _refusal(spec)
    if written:
        assert refused is not None and f"parameters.{unit}" in refused and "named like the unit" in refused, refused
    else:
        assert refused is None, refused


def test_refusals_through_the_command(tmp_path: Path) -> None:
    fields = (  # refused field by field
        "name: x\nparameters: {status: 1}\niteration: [shot]\n"
        "timeline:\n  steps: [{name: image, duration: 1 ms}]\n"
        "  lanes: {camera: {kind: camera, values: [a.b]}}\n"
        "execution: {compile_workers: 100000}\n"
    )
    named = ("parameters.status", "timeline.lanes.camera", "'a.b'", "execution.compile_workers")
    _assert_refused(_plan_file(tmp_path, fields), *named)
    plan = "name: x\nparameters: {us: 1 ms, pulse: 20 us}\niteration: [shot]\nexecution: {shot_timeout: -1 s}\n"
    _assert_refused(_plan_file(tmp_path, plan), "parameters.us", "execution.shot_timeout")  # refused by the plan


# --- 3. values that overflow in SI --------------------------------------------------------------

PREFIXES = {"T": 12, "G": 9, "M": 6, "k": 3, "": 0, "m": -3, "u": -6, "n": -9}
MAX_FLOAT = Decimal("1.7976931348623157e308")
EXPRESSION_PLACES = {
    "global": (("parameters", "offset"), "parameters.offset"),
    "start": (("iteration", 0, "linspace", "start"), "iteration[0].linspace.start"),
    "stop": (("iteration", 0, "linspace", "stop"), "iteration[0].linspace.stop"),
    "device": (("devices", "rf", "frequency"), "devices.rf.frequency"),
}


def _set(spec: dict[str, Any], where: tuple[str | int, ...], value: Any) -> None:
    node: Any = spec
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value


@QUICK
@given(
    mantissa=st.floats(1.0, 9.99),
    exponent=st.integers(280, 320),
    prefix=st.sampled_from(sorted(PREFIXES)),
    place=st.sampled_from(sorted(EXPRESSION_PLACES)),
)
def test_values_are_finite_in_si_or_refused(mantissa: float, exponent: int, prefix: str, place: str) -> None:
    text = f"{mantissa:.3f}e{exponent} {prefix}Hz"
    written = Decimal(f"{mantissa:.3f}") * Decimal(10) ** exponent
    si = written * Decimal(10) ** PREFIXES[prefix]
    assume(all(abs(v / MAX_FLOAT - 1) > Decimal("0.001") for v in (si, written)))  # not at the edge of rounding
    spec = lab_dict()
    where, field = EXPRESSION_PLACES[place]
    if place in ("start", "stop"):
        spec["parameters"]["offset"] = "0 Hz"
        spec["iteration"][0]["linspace"]["start"] = "0 Hz"
    if place == "device":
        _set(spec, where, f"{text} + detuning")
    else:
        _set(spec, where, text)
    refused = _refusal(spec)
    if si < MAX_FLOAT and written < MAX_FLOAT:
        assert refused is None or place == "device", refused  # the device adds detuning: may overflow
        if refused is None:
            for line in itertools.islice(plan_lines(load_spec(spec), as_json=True), 3):
                assert all(math.isfinite(v) for v in _strict_json(line)["parameters"].values())
    else:
        assert refused is not None and field in refused, refused
        assert "out of range in SI" in refused or "not a finite real number" in refused, refused


@QUICK
@given(power=st.integers(1, 120), prefix=st.sampled_from(["M", "G", "k", "m", "u"]))
def test_a_power_of_a_unit_that_overflows_in_si_is_refused(power: int, prefix: str) -> None:
    spec = lab_dict()
    spec["parameters"]["offset"] = f"1 {prefix}Hz ** {power}"
    spec["iteration"][0]["linspace"]["start"] = "-2 MHz"
    refused = _refusal(spec)
    if PREFIXES[prefix] * power <= 300:  # 1 uHz ** 60 underflows to 0: finite
        assert refused is None or "out of range" not in refused, refused
    elif PREFIXES[prefix] * power > 308:
        assert refused is not None and "parameters.offset" in refused and "out of range in SI" in refused, refused


@QUICK
@given(limit=st.floats(1e300, 1.7976931348623157e308), num=st.integers(1, 6), shuffle=st.booleans())
def test_loops_near_the_float_limits_stay_finite(limit: float, num: int, shuffle: bool) -> None:
    spec = lab_dict()
    spec["parameters"]["offset"] = "0 Hz"
    spec["iteration"][0]["linspace"].update(start=f"{-limit!r} Hz", stop=f"{limit!r} Hz", num=num, shuffle=shuffle)
    spec["devices"]["rf"]["frequency"] = "80 MHz"
    lines = [_strict_json(line) for line in plan_lines(load_spec(spec), as_json=True)]
    values = sorted(line["parameters"]["detuning"] for line in lines)
    assert len(values) == num and all(math.isfinite(v) for v in values)
    assert values[0] == (-limit if num > 1 else -limit) and (num == 1 or values[-1] == limit)


@QUICK
@given(limit=st.floats(1e300, 1.7976931348623157e308), step=st.floats(1e299, 1.7976931348623157e308))
def test_arange_near_the_float_limits_stays_finite_or_is_refused(limit: float, step: float) -> None:
    spec = lab_dict()
    spec["parameters"]["offset"] = "0 Hz"
    spec["iteration"][0] = {
        "arange": {"variable": "detuning", "start": f"{-limit!r} Hz", "stop": f"{limit!r} Hz", "step": f"{step!r} Hz"}
    }
    spec["iteration"][0]["arange"]["steps"] = ["shot"]
    spec["devices"]["rf"]["frequency"] = "80 MHz"
    loaded = load_spec(spec)
    lines = [_strict_json(line) for line in itertools.islice(plan_lines(loaded, as_json=True), 100)]
    assert all(math.isfinite(line["parameters"]["detuning"]) for line in lines)


def test_overflow_through_the_command(tmp_path: Path) -> None:
    text = "name: x\nparameters: {f: 1e305 GHz, g: 1 MHz ** 60}\niteration: [shot]\n"
    _assert_refused(_plan_file(tmp_path, text, "--json"), "parameters.f", "parameters.g", "out of range in SI")


# --- 4. work proportional to the text, not to its numbers ---------------------------------------


@QUICK
@given(size=st.integers(0, 3000), seed=st.integers(-(2**80), 2**80))
def test_a_shuffled_order_is_a_deterministic_permutation(size: int, seed: int) -> None:
    order = Permutation(size, seed)
    assert sorted(order) == list(range(size))
    assert list(order) == list(Permutation(size, seed))


@QUICK
@given(
    size=st.integers(2**20, MAX_SHOTS), seed=st.integers(0, 2**64), picks=st.lists(st.integers(0, 2**53), max_size=20)
)
def test_a_huge_shuffled_order_is_computed_index_by_index(size: int, seed: int, picks: list[int]) -> None:
    order = Permutation(size, seed)
    indices = sorted({p % size for p in picks})
    positions = [order[i] for i in indices]
    assert all(0 <= p < size for p in positions)
    assert len(set(positions)) == len(positions)
    assert positions == [Permutation(size, seed)[i] for i in indices]


@QUICK
@given(exponent=st.integers(0, 70), kind=st.sampled_from(["linspace", "repeat"]), shuffle=st.booleans())
def test_loop_sizes_up_to_2_70_are_planned_at_once_or_refused(exponent: int, kind: str, shuffle: bool) -> None:
    size = 2**exponent + (exponent % 3)
    spec = lab_dict()
    if kind == "linspace":
        spec["iteration"][0]["linspace"].update(num=size, shuffle=shuffle, seed=5)
        field = "iteration[0].linspace.num"
    else:
        spec["iteration"][0]["linspace"].update(num=1, steps=[{"repeat": {"count": size, "steps": ["shot"]}}])
        field = "iteration[0].linspace.steps[0].repeat.count"
    tracemalloc.start()
    try:
        refused = _refusal(spec)
        if refused is None:
            loaded = load_spec(spec)
            first = list(itertools.islice(iter_shots(loaded), 2))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50e6, f"{peak / 1e6:.0f} MB before the first shot"
    if size <= MAX_SHOTS:
        assert refused is None, refused
        assert count_shots(loaded) == size and [s.index for s in first] == list(range(min(2, size)))
    else:
        assert refused is not None and field in refused, refused


@QUICK
@given(outer=st.integers(1, 2**40), inner=st.integers(1, 2**40))
def test_the_total_shot_count_is_bounded(outer: int, inner: int) -> None:
    spec = lab_dict()
    spec["iteration"][0]["linspace"]["steps"] = [{"repeat": {"count": inner, "steps": ["shot"]}}]
    spec["iteration"][0]["linspace"]["num"] = outer
    refused = _refusal(spec)
    if outer * inner <= MAX_SHOTS:
        assert refused is None, refused
    else:
        assert refused is not None and "iteration: the sequence makes about" in refused, refused


@QUICK
@given(step=st.floats(1e-300, 1e-3), span=st.floats(1, 1e300))
def test_an_arange_with_too_many_values_is_refused_at_load(step: float, span: float) -> None:
    spec = lab_dict()
    spec["parameters"]["offset"] = "0 Hz"
    spec["iteration"][0] = {
        "arange": {"variable": "detuning", "start": "0 Hz", "stop": f"{span!r} Hz", "step": f"{step!r} Hz"}
    }
    spec["iteration"][0]["arange"]["steps"] = ["shot"]
    refused = _refusal(spec)
    if span / step > MAX_SHOTS * 1.001:
        assert refused is not None and "iteration[0].arange.step" in refused, refused
    elif span / step < MAX_SHOTS * 0.999:
        assert refused is None, refused


def _alias_bomb(width: int, levels: int) -> tuple[str, int]:
    """YAML where each level repeats the previous ``width`` times, and its expanded size (values)."""
    rows = ["  - &a0 [" + ", ".join(["x"] * width) + "]"]
    size = 1 + width
    total = 1 + size
    for level in range(1, levels + 1):
        rows.append(f"  - &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
        size = 1 + width * size
        total += size
    return "name: bomb\niteration: [shot]\ndescription:\n" + "\n".join(rows) + "\n", 1 + 2 + total


@QUICK
@given(width=st.integers(1, 12), levels=st.integers(0, 12))
def test_yaml_aliases_are_measured_not_expanded(width: int, levels: int) -> None:
    text, expanded = _alias_bomb(width, levels)
    tracemalloc.start()
    try:
        with pytest.raises(SpecError) as info:
            load_spec(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20e6, f"{peak / 1e6:.0f} MB to refuse {len(text)} bytes"
    message = str(info.value)
    if expanded > MAX_VALUES:
        assert "description: more than 100000 values once YAML aliases are expanded" in message, message
    else:
        assert "description" in message and "valid string" in message, message


@pytest.mark.parametrize(
    "text",
    [
        "name: r\niteration: &r [*r]\n",
        "name: r\niteration: [shot]\ndescription: &d [a, *d]\n",
        "name: r\niteration: &i [shot, {repeat: {count: 1, steps: *i}}]\n",
    ],
)
def test_a_recursive_alias_is_refused(text: str) -> None:
    with pytest.raises(SpecError, match="contains itself"):
        load_spec(text)
    with pytest.raises(SpecError, match="recursive"):  # a recursive mapping: PyYAML itself refuses it
        load_spec("name: r\niteration: [shot]\ndescription: &d {a: *d}\n")


def test_shared_aliases_within_the_bound_are_fine() -> None:
    text = (
        "name: shared\nparameters: {offset: 0 MHz}\n"
        "iteration:\n  - {values: {variable: a, values: &v [1 MHz, 2 MHz, 3 MHz], steps: [\n"
        "      {values: {variable: b, values: *v, steps: [shot]}}]}}\n"
    )
    assert count_shots(load_spec(text)) == 9


def test_huge_numbers_through_the_command(tmp_path: Path) -> None:
    bomb, _ = _alias_bomb(9, 8)
    _assert_refused(_plan_file(tmp_path, bomb), "description: more than 100000 values")
    big = f"name: x\niteration: [{{linspace: {{variable: a, start: 0, stop: 1, num: {2**70}, steps: [shot]}}}}]\n"
    _assert_refused(_plan_file(tmp_path, big), "iteration[0].linspace.num")
    shuffled = tmp_path / "shuffled.yaml"
    shuffled.write_text(
        "name: x\niteration: [{linspace: {variable: a, start: 0, stop: 1, num: 1000000000000, "
        "shuffle: true, seed: 1, steps: [shot]}}]\n"
    )
    with subprocess.Popen(
        [SHOTFLOW, "plan", "--json", str(shuffled)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        first = _strict_json(process.stdout.readline())
        process.stdout.close()  # what `| head -1` does: the command stops at its next write
        assert process.wait(timeout=120) == 0
        assert process.stderr is not None and process.stderr.read() == ""
    assert first["index"] == 0 and 0 <= first["parameters"]["a"] <= 1
