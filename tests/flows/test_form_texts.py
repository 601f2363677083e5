"""The texts of the run-sequence form: Prefect builds the form from the flow's parameter schema
(signature, Google-style docstring, the pydantic models' field descriptions)."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _lab import lab_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prefect.utilities.callables import parameter_schema

import devices
from flows.run import run_sequence, run_sequence_yaml
from flows.sequence import SequenceSpec
from flows.sequence._fields import DURATION_PATTERN, DURATION_UNITS
from flows.sequence._units import unit_named

MARKUP = re.compile(r"``|:[a-z]+:`|`~")
"""Sphinx/RST roles and literals, which the form shows as they are."""

SCHEMA = parameter_schema(run_sequence.fn).model_dump(by_alias=True)


def _texts(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (path, description or title) of a JSON schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("description", "title") and isinstance(value, str):
                yield f"{path}.{key}", value
            else:
                yield from _texts(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _texts(value, f"{path}[{index}]")


def _device_definitions() -> set[str]:
    """The definitions that come from the device models (they document instruments, not the spec)."""
    names: set[str] = set()
    for name in devices.known_device_types():
        schema = devices.get_device_type(name).configuration.model_json_schema()
        names |= {schema["title"], *schema.get("$defs", {})}
    return names


def test_every_parameter_of_the_flow_has_a_description() -> None:
    parameters = SCHEMA["properties"]
    assert set(parameters) == set(inspect.signature(run_sequence.fn).parameters)
    missing = [name for name, schema in parameters.items() if not schema.get("description")]
    assert missing == []


def test_no_text_of_the_form_carries_sphinx_markup() -> None:
    texts = [*_texts(SCHEMA), ("flow docstring", inspect.getdoc(run_sequence.fn) or "")]
    marked = [(path, text) for path, text in texts if MARKUP.search(text)]
    assert marked == []


PLACEHOLDER = re.compile(r"<[A-Za-z][^<>]*>")
"""``<device>``-style placeholders: the form renders descriptions as markdown, which drops them as HTML tags."""


def test_no_text_of_either_form_has_a_placeholder_the_markdown_would_drop() -> None:
    texts = [*_texts(SCHEMA), *_texts(parameter_schema(run_sequence_yaml.fn).model_dump(by_alias=True))]
    dropped = [(path, text) for path, text in texts if PLACEHOLDER.search(text)]
    assert dropped == []


def test_every_field_of_the_spec_models_has_a_description() -> None:
    device_models = _device_definitions()
    missing = [
        f"{model}.{field}"
        for model, schema in SCHEMA["definitions"].items()
        if model not in device_models
        for field, prop in schema.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert missing == []


def test_store_shows_as_plain_text_with_no_null_switch() -> None:
    assert SCHEMA["properties"]["store"]["type"] == "string"
    assert "anyOf" not in SCHEMA["properties"]["store"]


@pytest.mark.usefixtures("prefect_server")
def test_an_empty_store_is_the_default_path(tmp_path: Path) -> None:
    spec = SequenceSpec.model_validate(
        {**lab_spec(shots=2).model_dump(mode="json"), "storage": {"root": str(tmp_path)}}
    )
    state = asyncio.run(run_sequence(spec, store="", return_state=True))
    assert state.is_completed(), state.message
    assert [p.parent for p in tmp_path.glob("*/*.zarr")] == [tmp_path / spec.name]


def test_every_duration_unit_of_the_pattern_is_a_time_for_pint() -> None:
    assert all(str(unit_named(name).dimensionality) == "[time]" for name in DURATION_UNITS)  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # Python's $ also matches before a final newline; JSON Schema's (ECMA 262) does not
    text=st.from_regex(DURATION_PATTERN, alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))).filter(
        lambda t: not t.endswith("\n")
    )
)
def test_the_spec_accepts_every_shot_timeout_the_form_pattern_accepts(text: str) -> None:
    data = lab_spec(shots=2).model_dump(mode="json")
    data["execution"]["shot_timeout"] = text
    assert SequenceSpec.model_validate(data).execution.shot_timeout == text
