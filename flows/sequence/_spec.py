"""The sequence description (:class:`SequenceSpec`): a pydantic v2 model.

Field-level validators parse every expression; the model-level validator
(:func:`flows._validate.check_spec`) then checks names, dimensions and loop
shapes across the whole description, so a spec that validates can be planned
and run without further surprises.
"""

from __future__ import annotations

import keyword
import logging
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    PlainValidator,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

import devices

from ._expressions import CALIBRATED, compile_expression
from ._math import CONSTANTS, FUNCTIONS
from ._units import ureg

__all__ = [
    "Arange",
    "ArangeStep",
    "AnalogLaneSpec",
    "CameraLaneSpec",
    "Declare",
    "DeclareStep",
    "DigitalLaneSpec",
    "Execution",
    "Linspace",
    "LinspaceStep",
    "RampSpec",
    "RampValue",
    "Repeat",
    "RepeatStep",
    "Retry",
    "SequenceSpec",
    "Step",
    "Storage",
    "Timeline",
    "TimelineStep",
    "Values",
    "ValuesStep",
    "STEP_KINDS",
    "TAG_PREFIX",
]

logger = logging.getLogger(__name__)

MAX_NESTING = 32
STEP_KINDS = ("declare", "linspace", "arange", "values", "repeat", "shot")
TAG_PREFIX = "step:"
"""Prefix of the union tags pydantic inserts into error locations (stripped when reporting)."""
_RESERVED = frozenset({CALIBRATED, *FUNCTIONS, *CONSTANTS})


def _coerce_expression(value: Any) -> Any:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return repr(value)
    return value


def _parse_expression(text: str) -> str:
    compile_expression(text)  # raises ExpressionError (a ValueError): pydantic adds the field path
    return text


Expr = Annotated[
    str,
    BeforeValidator(_coerce_expression),
    AfterValidator(_parse_expression),
    Field(description="An expression with units, e.g. '2 * detuning + 5 MHz'."),
]


def _check_variable(name: str) -> str:
    if keyword.iskeyword(name) or name in _RESERVED:
        raise ValueError(f"{name!r} is reserved and cannot be a variable name")
    return name


Identifier = Annotated[
    str,
    Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64, description="A variable name."),
    AfterValidator(_check_variable),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- iteration steps -------------------------------------------------------------------------


class Declare(_Model):
    """Set ``variable`` to ``value`` (an expression of the variables set so far)."""

    variable: Identifier
    value: Expr


class Linspace(_Model):
    """``num`` evenly spaced values from ``start`` to ``stop`` (included), like numpy.linspace."""

    variable: Identifier
    start: Expr
    stop: Expr
    num: int = Field(ge=1)
    steps: list[Step] = Field(description="Steps run for every value of the loop variable.")
    shuffle: bool = Field(False, description="Run the loop's values in a random order.")
    seed: int | None = Field(None, description="Seed of the shuffle, for a reproducible order.")


class Arange(_Model):
    """Values from ``start`` by ``step`` up to ``stop`` (excluded), like numpy.arange."""

    variable: Identifier
    start: Expr
    stop: Expr
    step: Expr
    steps: list[Step] = Field(description="Steps run for every value of the loop variable.")
    shuffle: bool = Field(False, description="Run the loop's values in a random order.")
    seed: int | None = Field(None, description="Seed of the shuffle, for a reproducible order.")


class Values(_Model):
    """An explicit list of values."""

    variable: Identifier
    values: list[Expr] = Field(min_length=1)
    steps: list[Step] = Field(description="Steps run for every value of the loop variable.")
    shuffle: bool = Field(False, description="Run the loop's values in a random order.")
    seed: int | None = Field(None, description="Seed of the shuffle, for a reproducible order.")


class Repeat(_Model):
    """Run ``steps`` ``count`` times."""

    count: int = Field(ge=1)
    steps: list[Step]


class DeclareStep(_Model):
    declare: Declare


class LinspaceStep(_Model):
    linspace: Linspace


class ArangeStep(_Model):
    arange: Arange


class ValuesStep(_Model):
    values: Values


class RepeatStep(_Model):
    repeat: Repeat


def _step_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return TAG_PREFIX + value if value == "shot" else None
    if isinstance(value, dict) and len(value) == 1:
        (key,) = value
        return TAG_PREFIX + key if key in STEP_KINDS and key != "shot" else None
    if isinstance(value, BaseModel):
        (key,) = type(value).model_fields
        return TAG_PREFIX + key
    return None


def _check_step_kind(value: Any) -> Any:
    if _step_kind(value) is None:
        expected = ", ".join(STEP_KINDS)
        if isinstance(value, dict) and len(value) != 1:
            found = f"a mapping with keys {sorted(map(str, value))}" if value else "an empty mapping"
            raise PydanticCustomError(
                "step_kind",
                "a step has exactly one key (its kind); found {found}; expected one of: {expected}",
                {"found": found, "expected": expected},
            )
        found = repr(next(iter(value))) if isinstance(value, dict) else repr(value)
        raise PydanticCustomError(
            "step_kind",
            "unknown step kind {found}; expected one of: {expected}",
            {"found": found, "expected": expected},
        )
    return value


Step = Annotated[
    Annotated[DeclareStep, Tag(TAG_PREFIX + "declare")]
    | Annotated[LinspaceStep, Tag(TAG_PREFIX + "linspace")]
    | Annotated[ArangeStep, Tag(TAG_PREFIX + "arange")]
    | Annotated[ValuesStep, Tag(TAG_PREFIX + "values")]
    | Annotated[RepeatStep, Tag(TAG_PREFIX + "repeat")]
    | Annotated[Literal["shot"], Tag(TAG_PREFIX + "shot")],
    Discriminator(_step_kind),
    BeforeValidator(_check_step_kind),
]


# --- timeline --------------------------------------------------------------------------------


class TimelineStep(_Model):
    """One step of the shot's timeline and its duration (an expression in time units)."""

    name: str = Field(min_length=1)
    duration: Expr


class RampSpec(_Model):
    start: Expr
    stop: Expr


class RampValue(_Model):
    """A linear ramp from ``start`` to ``stop`` over one timeline step."""

    ramp: RampSpec


class DigitalLaneSpec(_Model):
    """A digital output: one bool per timeline step."""

    kind: Literal["digital"]
    values: list[bool]


class AnalogLaneSpec(_Model):
    """An analog output: one expression or ramp per step; bare numbers are in ``unit``."""

    kind: Literal["analog"]
    unit: str | None = None
    values: list[Expr | RampValue]

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str | None) -> str | None:
        if unit is not None:
            try:
                ureg.parse_units(unit)
            except Exception as exc:  # pint raises several error types for bad units
                raise ValueError(f"unknown unit {unit!r}") from exc
        return unit


class CameraLaneSpec(_Model):
    """A camera: the picture name taken during each step, or null."""

    kind: Literal["camera"]
    values: list[str | None]


LaneSpec = Annotated[DigitalLaneSpec | AnalogLaneSpec | CameraLaneSpec, Field(discriminator="kind")]


class Timeline(_Model):
    """What happens during one shot: ordered steps and named lanes (one value per step)."""

    steps: list[TimelineStep] = Field(default_factory=list)
    lanes: dict[str, LaneSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _lane_lengths(self) -> Timeline:
        names = [s.name for s in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate timeline step names: {', '.join(duplicates)}")
        problems = [
            f"timeline.lanes.{name}.values: {len(lane.values)} values for {len(self.steps)} timeline steps"
            for name, lane in self.lanes.items()
            if len(lane.values) != len(self.steps)
        ]
        if problems:
            raise ValueError("\n".join(problems))
        return self


# --- devices ---------------------------------------------------------------------------------


def _validate_device(value: Any) -> devices.DeviceConfiguration:
    if isinstance(value, devices.DeviceConfiguration):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ValueError("a device configuration is a mapping with a 'type' field")
    try:
        configuration = devices.get_device_type(value["type"]).configuration
    except devices.UnknownDeviceTypeError as exc:
        raise ValueError(str(exc)) from exc
    try:
        return configuration.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'type'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ValueError(problems) from exc


def _dump_device(value: devices.DeviceConfiguration, info: Any) -> dict[str, Any]:
    return value.model_dump(mode=info.mode)


class _DeviceSchema:
    """JSON schema of a device configuration: a oneOf of the registered types, by ``type``."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        choices: list[JsonSchemaValue] = []
        mapping: dict[str, str] = {}
        for name in devices.known_device_types():
            configuration = devices.get_device_type(name).configuration
            schema = handler(configuration.__pydantic_core_schema__)
            choices.append(schema)
            if "$ref" in schema:
                mapping[name] = schema["$ref"]
        if not choices:
            return {"type": "object", "properties": {"type": {"type": "string"}}, "required": ["type"]}
        result: JsonSchemaValue = {"oneOf": choices, "discriminator": {"propertyName": "type"}}
        if len(mapping) == len(choices):
            result["discriminator"]["mapping"] = mapping
        return result


DeviceConfig = Annotated[
    devices.DeviceConfiguration,
    PlainValidator(_validate_device),
    PlainSerializer(_dump_device, return_type=dict),
    _DeviceSchema(),
]


# --- execution and storage -------------------------------------------------------------------


class Retry(_Model):
    """Shot retry policy: how often, and for which errors."""

    max_attempts: int = Field(3, ge=1)
    retry_on: list[Literal["timeout", "device"]] = Field(default_factory=lambda: ["timeout"])


class Execution(_Model):
    """How shots are run: compile-ahead bound, timeout, retries, batching."""

    lookahead: int = Field(4, ge=1, description="Compile at most this many shots ahead.")
    shot_timeout: Expr = Field("10 s", description="Time limit of one shot (a time).")
    retry: Retry = Field(default_factory=Retry)
    shots_per_task: int = Field(1, ge=1)
    compile_workers: int | None = Field(None, ge=1)
    device_lock: Literal["wait", "fail"] = Field(
        "wait", description="When a device is used by another run: wait for it, or fail at once."
    )
    device_lock_timeout: float | None = Field(
        None, gt=0, description="Seconds to wait for busy devices before failing (None: no limit)."
    )


class Storage(_Model):
    """Where results go: ``<root>/<sequence name>/<timestamp>.zarr``."""

    root: str = Field("results", min_length=1)


# --- the sequence ----------------------------------------------------------------------------


class SequenceSpec(_Model):
    """A sequence: global parameters, iteration, shot timeline, devices, execution, storage.

    Validation parses every expression and checks names, units and loops; a
    failure raises :class:`pydantic.ValidationError` (use :func:`flows.load_spec`
    to get one :class:`~flows.SpecError` naming each field path).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=100)
    description: str = ""
    parameters: dict[Identifier, Expr] = Field(default_factory=dict)
    iteration: list[Step]
    timeline: Timeline = Field(default_factory=Timeline)
    devices: dict[str, DeviceConfig] = Field(default_factory=dict)
    execution: Execution = Field(default_factory=Execution)
    storage: Storage = Field(default_factory=Storage)

    @model_validator(mode="after")
    def _check_semantics(self) -> SequenceSpec:
        from ._validate import check_spec  # the checker walks these models

        problems = check_spec(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self


for _model in (Linspace, Arange, Values, Repeat, LinspaceStep, ArangeStep, ValuesStep, RepeatStep, SequenceSpec):
    _model.model_rebuild()
