"""``shotflow plan`` and ``shotflow schema``: output, streaming and bad-input handling."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli._main import main
from flows.sequence import load_spec, plan_lines

EXAMPLES = Path(__file__).parents[2] / "examples"


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_plan_json_exact_si_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        "name: j\niteration:\n"
        "  - {declare: {variable: d, value: 200 kHz}}\n"
        "  - {values: {variable: flag, values: [true, false], steps: [shot]}}\n"
        "  - {declare: {variable: t, value: 1.5 ms}}\n"
        "  - shot\n",
    )
    assert main(["plan", str(path), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"index": 0, "parameters": {"d": 200000.0, "flag": True}},
        {"index": 1, "parameters": {"d": 200000.0, "flag": False}},
        {"index": 2, "parameters": {"d": 200000.0, "flag": False, "t": 0.0015}},
    ]


def test_plan_human_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(EXAMPLES / "resonance.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "sequence resonance: 41 shots"
    assert "detuning (Hz)" in out[1] and "rf_frequency (Hz)" in out[1]
    assert out[2].split() == ["0", "100", "μW", "-2", "MHz", "78", "MHz"]
    assert out[-1] == "total: 41 shots"
    assert len(out) == 41 + 3


def test_plan_unknown_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(EXAMPLES / "scan_2d.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "sequence scan_2d: unknown number of shots"
    assert out[-1] == "total: 28 shots"


def test_plan_streams_a_billion_shots() -> None:
    spec = load_spec(
        "name: big\niteration:\n"
        "  - {linspace: {variable: a, start: 0 Hz, stop: 1 MHz, num: 100000, steps: ["
        "{linspace: {variable: b, start: 0 s, stop: 1 s, num: 10000, steps: [shot]}}]}}\n"
    )
    head = list(itertools.islice(plan_lines(spec), 4))
    assert head[0] == "sequence big: 1000000000 shots"
    first_json = json.loads(next(iter(plan_lines(spec, as_json=True))))
    assert first_json == {"index": 0, "parameters": {"a": 0.0, "b": 0.0}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\niteration: [{foo: 1}]\n", "iteration[0]: unknown step kind 'foo'"),
        (
            "name: x\niteration: [{declare: {variable: a, value: nope}}, shot]\n",
            "iteration[0].declare.value: expression 'nope': unknown variable or unit 'nope'",
        ),
        ("name: x\niteration: [{declare: {variable: a, value: 3 MHzz}}, shot]\n", "unknown variable or unit 'MHzz'"),
        (
            "name: x\niteration: [{linspace: {variable: a, start: 0, stop: 1, num: 0, steps: [shot]}}]\n",
            "iteration[0].linspace.num",
        ),
        (
            "name: x\niteration: [{arange: {variable: a, start: 0, stop: 1, step: 0, steps: [shot]}}]\n",
            "iteration[0].arange.step: step must not be zero",
        ),
        (
            "name: x\niteration: [{values: {variable: a, values: [1], steps: []}}]\n",
            "iteration[0].values.steps: the loop yields no shot",
        ),
        (
            "name: x\niteration: [shot]\ndevices:\n  a: {type: sim.camera}\n  a: {type: sim.camera}\n",
            "duplicate key 'a'",
        ),
        ("name: x\niteration: [shot\n", "invalid YAML"),
        (
            "name: x\niteration: [shot]\ndevices: {a: {type: nope.device}}\n",
            "devices.a: unknown device type 'nope.device'",
        ),
        ("name: x\niteration: [{declare: {variable: a, value: '1 MHz + 1 s'}}, shot]\n", "dimension mismatch"),
    ],
)
def test_bad_input_exit_code_and_message(
    text: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", str(write(tmp_path, text))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert expected in captured.err
    assert captured.err.startswith("shotflow plan: error: ")
    assert "Traceback" not in captured.err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "SequenceSpec"
    assert "iteration" in schema["properties"]


def test_cli_subprocess(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "flows.cli", "plan", "--json", str(EXAMPLES / "rabi.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert len(lines) == 25
    assert json.loads(lines[-1])["parameters"]["pulse_duration"] == pytest.approx(40e-6)
    bad = write(
        tmp_path, "name: x\niteration: [{linspace: {variable: a, start: 0, stop: zz, num: 3, steps: [shot]}}]\n"
    )
    failed = subprocess.run(
        [sys.executable, "-m", "flows.cli", "plan", str(bad)], capture_output=True, text=True, check=False, timeout=120
    )
    assert failed.returncode == 2
    assert "iteration[0].linspace.stop: expression 'zz': unknown variable or unit 'zz'" in failed.stderr
    assert "Traceback" not in failed.stderr
