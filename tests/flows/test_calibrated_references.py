"""Which calibrations a spec needs comes from its expressions, never from other text."""

from __future__ import annotations

from _lab import lab_spec

from flows.sequence import calibrated_references


def test_references_come_from_expressions_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = lab_spec(shots=2, journal=tmp_path / "calibrated.jsonl")
    spec = spec.model_copy(update={"description": "uses calibrated.nothing in prose"})
    assert calibrated_references(spec) == set()


def test_device_and_loop_expressions_are_found() -> None:
    spec = lab_spec(shots=2)
    data = spec.model_dump(mode="json")
    data["devices"]["rf"]["frequency"] = "calibrated.resonance + detuning"
    data["iteration"][0]["linspace"]["stop"] = "calibrated.span"
    assert calibrated_references(type(spec).model_validate(data)) == {"resonance", "span"}
