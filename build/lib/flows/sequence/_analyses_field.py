"""The spec's ``analyses``: per-shot analyses named by registered type, with their settings.

A spec never names code: ``type`` must be a registered analysis type (``shotflow.analyses``
entry points, see :mod:`devices.analyses`); the settings are validated by that type's model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import GetJsonSchemaHandler, PlainSerializer, PlainValidator, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from devices.analyses import Analysis, UnknownAnalysisTypeError, get_analysis_type, known_analysis_types

__all__ = ["ANALYSIS_PREFIX", "AnalysisConfig", "analysis_problems"]

ANALYSIS_PREFIX = "analysis"
"""The stored outputs are ``analysis.<name>.<field>``: no device may be named ``analysis``."""


def _validate(value: Any) -> Analysis:
    if isinstance(value, Analysis):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ValueError("an analysis is a mapping with a 'type' field (a registered analysis type)")
    try:
        model = get_analysis_type(value["type"])
    except UnknownAnalysisTypeError as exc:
        raise ValueError(str(exc)) from exc
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'type'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ValueError(problems) from exc


class _Schema:
    """JSON schema of an analysis: a oneOf of the registered types, by ``type``."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        choices = [handler(get_analysis_type(name).__pydantic_core_schema__) for name in known_analysis_types()]
        if not choices:
            return {"type": "object", "properties": {"type": {"type": "string"}}, "required": ["type"]}
        return {"oneOf": choices, "discriminator": {"propertyName": "type"}}


AnalysisConfig = Annotated[
    Analysis,
    PlainValidator(_validate),
    PlainSerializer(lambda value, info: value.model_dump(mode=info.mode), return_type=dict),
    _Schema(),
]
"""One entry of ``analyses``: a registered analysis type's settings."""


def analysis_problems(analyses: Mapping[str, Analysis], devices: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``analyses`` given the spec's ``devices``: each problem names its field."""
    problems = []
    if ANALYSIS_PREFIX in devices:
        problems.append(f"devices.{ANALYSIS_PREFIX}: {ANALYSIS_PREFIX!r} is reserved for the analyses' outputs")
    for name, analysis in analyses.items():
        device, dot, label = analysis.data.partition(".")
        if not dot or not label:
            problems.append(f"analyses.{name}.data: {analysis.data!r} is not '<device>.<label>'")
        elif device not in devices:
            known = ", ".join(sorted(devices)) or "none"
            problems.append(f"analyses.{name}.data: no device {device!r} in devices (devices: {known})")
    return problems
