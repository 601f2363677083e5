"""Bad input: invalid specs are refused (SpecError naming the field) before any device is touched;
nothing escapes the results folder; huge inputs are refused or streamed, never exhaust memory."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from _rlab import lab_dict, read_journal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows._errors import SpecError
from flows.run import resolve_store_path
from flows.sequence import count_shots, iter_shots, load_spec

FIELDS: dict[str, tuple[tuple[str | int, ...], str]] = {
    # field path in the spec -> (location in the mapping, text the error names)
    "parameters.offset": (("parameters", "offset"), "parameters.offset"),
    "linspace.start": (("iteration", 0, "linspace", "start"), "iteration[0].linspace.start"),
    "linspace.stop": (("iteration", 0, "linspace", "stop"), "iteration[0].linspace.stop"),
    "timeline.duration": (("timeline", "steps", 0, "duration"), "timeline.steps[0].duration"),
    "rf.frequency": (("devices", "rf", "frequency"), "devices.rf"),
    "shot_timeout": (("execution", "shot_timeout"), "execution.shot_timeout"),
}

BAD_EXPRESSIONS = st.one_of(
    st.sampled_from(
        [
            "__import__('os').system('touch /tmp/pwned')",
            "open('/etc/passwd')",
            "().__class__.__bases__[0].__subclasses__()",
            "lambda: 1",
            "[1, 2]",
            "x; y",
            "1 +",
            "exec('1')",
            "detuning.__class__",
            "2 ** 10 ** 10",
            "1 MHz + 1 s",
            "no_such_variable * 2",
            "",
        ]
    ),
    st.text(alphabet="()[]{};:'\"\\_.,=!@#$`~", min_size=1, max_size=30),
)


def _set(spec: dict[str, Any], where: tuple[str | int, ...], value: Any) -> None:
    node: Any = spec
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(FIELDS)), text=BAD_EXPRESSIONS)
def test_invalid_expressions_are_refused_naming_the_field(tmp_path: Path, field: str, text: str) -> None:
    journal = tmp_path / "journal.jsonl"
    spec = lab_dict(journal=journal)
    where, named = FIELDS[field]
    _set(spec, where, text)
    try:
        load_spec(spec)
    except SpecError as exc:
        assert named in str(exc), f"{exc} does not name {named}"
    else:  # a few random texts are valid expressions (e.g. "(1)"): they must evaluate, not execute
        pass
    assert not Path("/tmp/pwned").exists()
    assert read_journal(journal) == [], "a device was touched while validating"


@settings(max_examples=60, deadline=None)
@given(
    num=st.integers(min_value=-5, max_value=5),
    lookahead=st.integers(min_value=-2, max_value=3),
    name=st.sampled_from(["ok", "../up", "a/b", "", "x" * 200, "ok-1.2"]),
)
def test_invalid_fields_are_refused_before_anything_runs(num: int, lookahead: int, name: str) -> None:
    spec = lab_dict(name="probe")
    spec["iteration"][0]["linspace"]["num"] = num
    spec["execution"]["lookahead"] = lookahead
    spec["name"] = name
    valid = num >= 1 and lookahead >= 1 and name in {"ok", "ok-1.2"}
    if valid:
        assert count_shots(load_spec(spec)) == num
        return
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    message = str(info.value)
    if num < 1:
        assert "iteration[0].linspace.num" in message
    if lookahead < 1:
        assert "execution.lookahead" in message
    if name not in {"ok", "ok-1.2"}:
        assert "name" in message


def test_a_billion_shot_scan_is_counted_and_streamed() -> None:
    spec = lab_dict()
    spec["iteration"][0]["linspace"]["num"] = 10**9
    loaded = load_spec(spec)
    assert count_shots(loaded) == 10**9
    first = list(itertools.islice(iter_shots(loaded), 3))
    assert [s.index for s in first] == [0, 1, 2]


def test_a_million_character_expression_is_refused() -> None:
    spec = lab_dict()
    spec["parameters"]["offset"] = "1 + " * 250_000 + "1 MHz"
    with pytest.raises(SpecError, match="parameters.offset.*longer than"):
        load_spec(spec)


def _nested(depth: int) -> list[Any]:
    steps: list[Any] = ["shot"]
    for _ in range(depth):
        steps = [{"repeat": {"count": 1, "steps": steps}}]
    return steps


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deeply_nested_loops_are_refused_cleanly(depth: int) -> None:
    mapping = lab_dict()
    mapping["iteration"] = _nested(min(depth, 1000))
    with pytest.raises(SpecError, match="iteration: nested deeper") as info:
        load_spec(mapping)
    assert len(str(info.value)) < 300, "a short, clear message"
    head = json.dumps({k: v for k, v in lab_dict().items() if k != "iteration"})[:-1]
    as_json = head + ', "iteration": ' + '[{"repeat": {"count": 1, "steps": ' * depth + '["shot"]' + "}}]" * depth + "}"
    as_yaml = "name: x\niteration: " + "[{repeat: {count: 1, steps: " * depth + "[shot]" + "}}]" * depth + "\n"
    for text in (as_json, as_yaml):  # the CLI's path: text, where the parsers themselves recurse
        with pytest.raises(SpecError, match="nested"):
            load_spec(text)


@pytest.mark.parametrize("root", ["../outside", "/etc", "link", "link/deeper", "a/../../outside"])
def test_storage_root_cannot_escape_the_results_folder(tmp_path: Path, root: str) -> None:
    results = tmp_path / "results"
    outside = tmp_path / "outside"
    results.mkdir()
    outside.mkdir()
    (results / "link").symlink_to(outside)
    spec = lab_dict()
    spec["storage"] = {"root": root}
    with pytest.raises(SpecError, match="storage.root"):
        resolve_store_path(load_spec(spec), results_root=results)


@pytest.mark.parametrize("store", ["../x.zarr", "/tmp/x.zarr", "link/x.zarr"])
def test_store_path_cannot_escape_the_results_folder(tmp_path: Path, store: str) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "link").symlink_to(tmp_path)
    with pytest.raises(SpecError, match="store"):
        resolve_store_path(load_spec(lab_dict()), results_root=results, store=Path(store))


@pytest.mark.usefixtures("prefect_server")
def test_a_real_run_refuses_a_root_that_links_outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from flows.run import run_sequence

    results = tmp_path / "results"
    outside = tmp_path / "outside"
    results.mkdir()
    outside.mkdir()
    (results / "link").symlink_to(outside)
    journal = tmp_path / "journal.jsonl"
    spec = lab_dict(journal=journal)
    spec["storage"] = {"root": "link"}
    monkeypatch.setenv("SHOTFLOW_RESULTS_ROOT", str(results))
    state = asyncio.run(run_sequence(load_spec(spec), return_state=True))
    assert state.is_failed()
    assert not any(outside.iterdir()), "something was written outside the results folder"
    assert read_journal(journal) == [], "a device was entered"
    assert os.listdir(results) == ["link"]
