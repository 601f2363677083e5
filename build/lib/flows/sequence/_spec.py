"""The sequence description (:class:`SequenceSpec`): a pydantic v2 model.

Field-level validators parse every expression; the model-level validator then
analyses the whole description once (:func:`flows.sequence.plan_sequence`:
names, dimensions, loop shapes), so a spec that validates can be planned and
run without further surprises. The steps are in :mod:`._steps`, the timeline
in :mod:`._timeline`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

import devices

from ._analyses_field import AnalysisConfig, analysis_problems
from ._fields import (
    DURATION_PATTERN,
    INDEX_PREFIX,
    NAME_KEYS,
    STORE_NAMES,
    Expr,
    FrozenModel,
    Identifier,
    Name,
    SequenceName,
)
from ._live_plot_field import LivePlot, live_plot_problems
from ._steps import Step, assigned_names
from ._timeline import Timeline

if TYPE_CHECKING:
    from ._plan import SequencePlan

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_COMPILE_WORKERS",
    "MAX_LOOKAHEAD",
    "MAX_SHOTS_PER_TASK",
    "Execution",
    "Retry",
    "SequenceSpec",
    "Storage",
]

logger = logging.getLogger(__name__)


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


MAX_LOOKAHEAD = 1024
"""Most shots compiled ahead (each held in memory until it runs)."""
MAX_SHOTS_PER_TASK = 10_000
"""Most shots in one Prefect task."""
MAX_COMPILE_WORKERS = 64
"""Most compile worker processes (each one a Python process)."""
MAX_ATTEMPTS = 100
"""Most attempts of one shot."""


class Retry(FrozenModel):
    """Shot retry policy: how often, and for which errors."""

    max_attempts: int = Field(3, ge=1, le=MAX_ATTEMPTS, description="Most attempts of one shot, the first included.")
    retry_on: list[Literal["timeout", "device"]] = Field(
        default_factory=lambda: ["timeout"],
        description="The errors that retry a shot: a shot timeout, a device error declared retryable.",
    )


class Execution(FrozenModel):
    """How shots are run: compile-ahead bound, timeout, retries, batching."""

    lookahead: int = Field(4, ge=1, le=MAX_LOOKAHEAD, description="Compile at most this many shots ahead.")
    shot_timeout: Expr = Field(
        "10 s",
        description="Time limit of one shot: a positive number and a time unit, e.g. 10 s or 500 ms.",
        json_schema_extra={"pattern": DURATION_PATTERN},
    )
    retry: Retry = Field(default_factory=Retry, description="When a failed shot is run again.")
    shots_per_task: Annotated[int, Field(ge=1, le=MAX_SHOTS_PER_TASK)] | Literal["auto"] = Field(
        "auto",
        description=(
            "Shots per Prefect task run (one compile and one execute task run per batch). 'auto' (default): "
            "sized from the measured shot cycle (mean of the last 20 shots) so that a batch lasts about 1 s, "
            "i.e. at most ~2 task runs/s, which the local Prefect server records without lag or taking "
            "the shots' CPU: one shot per task from 0.5 s cycles up, else ceil(1 s / cycle), from 1 (first "
            "batch) up to 1000, at most 4x from one batch to the next. An integer fixes "
            "the size. Results, order and where a compile error stops are the same for any size."
        ),
    )
    compile_workers: int | None = Field(
        None,
        ge=1,
        le=MAX_COMPILE_WORKERS,
        description=(
            "Processes compiling the CPU-heavy devices' shots (e.g. a pulse sequencer's samples), from the first "
            "shot. Unset (default): they compile in a thread until one shot takes over 2 ms there, then in one "
            "process per core."
        ),
    )
    device_lock: Literal["wait", "fail"] = Field(
        "wait", description="When a device is used by another run: wait for it, or fail at once."
    )
    device_lock_timeout: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Seconds to wait for busy devices before failing (None: no limit)."
    )


class Storage(FrozenModel):
    """Where results go: a folder ROOT/SEQUENCE NAME/START TIME.zarr per run."""

    root: str = Field("results", min_length=1, description="The folder of every run's results.")


# --- the sequence and its plans --------------------------------------------------------------


class _PlanCache:
    """The plans of one spec instance, by the calibration values they used.

    Invisible to the spec's equality (every cache equals every other) and
    pickled with the spec, so a worker process receiving it does not analyse again.
    """

    _LIMIT = 8

    def __init__(self) -> None:
        self.plans: list[SequencePlan] = []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _PlanCache)

    def __hash__(self) -> int:
        return 0

    def find(self, calibrated: Mapping[str, Any] | None) -> SequencePlan | None:
        for plan in self.plans:
            if _same_values(plan.calibrated, calibrated):
                return plan
        return None

    def add(self, plan: SequencePlan) -> SequencePlan:
        if len(self.plans) >= self._LIMIT:
            del self.plans[1]  # keep the first, uncalibrated plan: validation made it
        self.plans.append(plan)
        return plan


def _same_values(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    if a.keys() != b.keys():
        return False
    try:
        return all(type(a[k]) is type(b[k]) and bool(a[k] == b[k]) for k in a)
    except Exception:  # noqa: BLE001 - a value that cannot be compared is a different value
        return False


class SequenceSpec(FrozenModel):
    """A sequence: global parameters, the scan, the shot's timeline, devices, execution and storage.

    Every expression is parsed and names, units and loops are checked before anything runs;
    each problem is reported with the path of its field.
    """

    # (validation raises pydantic.ValidationError; flows.load_spec turns it into one SpecError)

    name: SequenceName = Field(description="The sequence's name; its results go in a folder of that name.")
    description: str = Field("", description="Free text: what the sequence is for.")
    parameters: dict[Identifier, Expr] = Field(
        default_factory=dict, description="Global parameters by name, each an expression, e.g. center: 80 MHz."
    )
    iteration: list[Step] = Field(
        description="The scan: declarations and loops (linspace, arange, values, repeat), nested; each shot step runs "
        "one shot."
    )
    timeline: Timeline = Field(default_factory=Timeline, description="What happens during one shot.")
    devices: Annotated[dict[Name, DeviceConfig], NAME_KEYS] = Field(
        default_factory=dict, description="The instruments by name, each with its type and settings."
    )
    analyses: Annotated[dict[Name, AnalysisConfig], NAME_KEYS] = Field(
        default_factory=dict,
        description="Per-shot analyses by name, each a registered type with its settings "
        "(e.g. atoms: {type: roi_sum, data: camera.atoms}); stored as analysis.NAME.FIELD.",
    )
    execution: Execution = Field(default_factory=Execution, description="How shots are run.")
    storage: Storage = Field(default_factory=Storage, description="Where results go.")
    live_plot: LivePlot = Field(
        default_factory=LivePlot, description="A plot of one variable on the run's Artifacts tab while it runs."
    )

    _plans: _PlanCache = PrivateAttr(default_factory=_PlanCache)

    @model_validator(mode="after")
    def _check_semantics(self) -> SequenceSpec:
        problems = [
            *self._name_clashes(),
            *analysis_problems(self.analyses, self.devices),
            *live_plot_problems(self.live_plot, self.devices, self.analyses),
            *self.plan().problems,
        ]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _name_clashes(self) -> list[str]:
        """Device names that are store bookkeeping names or variables (``camera`` beside ``camera.atoms``)."""
        variables = set(self.parameters) | assigned_names(self.iteration)
        problems = []
        for name in self.devices:
            if name in STORE_NAMES:
                problems.append(f"devices.{name}: {name!r} is a bookkeeping name of the results store")
            elif name == INDEX_PREFIX:
                problems.append(f"devices.{name}: {name!r} names the store's loop indices (index.<axis>)")
            elif name in variables:
                problems.append(f"devices.{name}: {name!r} is also a variable; a device and a variable need two names")
        return problems

    def plan(self, calibrated: Mapping[str, Any] | None = None) -> SequencePlan:
        """The spec analysed once per calibration values: see :func:`flows.sequence.plan_sequence`."""
        from ._analysis import build_plan  # the analysis walks these models

        cache = self._plans
        if cache.plans and cache.plans[0].spec is not self:  # a model_copy shares its original's private attributes
            cache = self._plans = _PlanCache()
        base = cache.find(None) or cache.add(build_plan(self, None))
        if calibrated is None or not base.calibrated_references:
            return base  # no calibration value can change the plan
        used = {name: calibrated[name] for name in sorted(base.calibrated_references) if name in calibrated}
        return cache.find(used) or cache.add(build_plan(self, used))
