"""The shot's timeline: ordered steps with durations, and lanes (digital, analog, camera) of one value per step."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ._fields import NAME_KEYS, Expr, FrozenModel, Name
from ._units import ureg

__all__ = [
    "AnalogLaneSpec",
    "CameraLaneSpec",
    "DigitalLaneSpec",
    "LaneSpec",
    "RampSpec",
    "RampValue",
    "Timeline",
    "TimelineStep",
]


class TimelineStep(FrozenModel):
    """One step of the shot's timeline and its duration (an expression in time units)."""

    name: Name = Field(description="The step's name.")
    duration: Expr = Field(description="How long the step lasts, a time, e.g. 2 ms.")


class RampSpec(FrozenModel):
    start: Expr
    stop: Expr


class RampValue(FrozenModel):
    """A linear ramp from start to stop over one timeline step."""

    ramp: RampSpec = Field(description="A linear ramp over the step.")


class DigitalLaneSpec(FrozenModel):
    """A digital output: one bool per timeline step."""

    kind: Literal["digital"] = Field(description="A digital output.")
    values: list[bool] = Field(description="On or off, one per step.")


class AnalogLaneSpec(FrozenModel):
    """An analog output: one expression or ramp per step; bare numbers are in the lane's unit."""

    kind: Literal["analog"] = Field(description="An analog output.")
    unit: str | None = Field(None, description="The unit of bare numbers, e.g. V (None: bare numbers have no unit).")
    values: list[Expr | RampValue] = Field(description="One expression or ramp per step.")

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, unit: str | None) -> str | None:
        if unit is not None:
            try:
                ureg.parse_units(unit)
            except Exception as exc:  # pint raises several error types for bad units
                raise ValueError(f"unknown unit {unit!r}") from exc
        return unit


class CameraLaneSpec(FrozenModel):
    """A camera: the picture name taken during each step, or null."""

    kind: Literal["camera"] = Field(description="A camera.")
    values: list[Name | None] = Field(description="One picture name per step, or null for no picture.")


LaneSpec = Annotated[DigitalLaneSpec | AnalogLaneSpec | CameraLaneSpec, Field(discriminator="kind")]


class Timeline(FrozenModel):
    """What happens during one shot: ordered steps and named lanes (one value per step)."""

    steps: list[TimelineStep] = Field(default_factory=list, description="The steps of one shot, in order.")
    lanes: Annotated[dict[Name, LaneSpec], NAME_KEYS] = Field(
        default_factory=dict, description="The outputs by name, each with one value per step."
    )

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
