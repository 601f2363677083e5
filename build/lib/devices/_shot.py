"""The frozen values that pass from the sequence layer to device compilers."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "AnalogLane",
    "CameraLane",
    "DigitalLane",
    "Lane",
    "Ramp",
    "SequenceContext",
    "Shot",
    "ShotTimeline",
]

ParameterValue = float | int | bool


@dataclass(frozen=True)
class Shot:
    """One shot to compile: its index in the sequence and its parameters.

    ``parameters`` maps variable name -> value in SI base units (floats), or a
    bool/int where the expression was one. ``indices`` maps each enclosing loop's
    axis name (its variable, or ``repeat``) -> the shot's position in that loop's
    range, in scan order (the unshuffled position for a shuffled loop).
    """

    index: int
    parameters: Mapping[str, ParameterValue] = field(default_factory=dict)
    indices: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Ramp:
    """A linear ramp from ``start`` to ``stop`` over one timeline step (SI units)."""

    start: float
    stop: float


@dataclass(frozen=True)
class DigitalLane:
    """A digital lane: one bool per timeline step."""

    values: tuple[bool, ...]


@dataclass(frozen=True)
class AnalogLane:
    """An analog lane: a constant (SI float) or a :class:`Ramp` per timeline step."""

    values: tuple[float | Ramp, ...]
    unit: str = ""


@dataclass(frozen=True)
class CameraLane:
    """A camera lane: a picture name per step, or ``None`` when no picture is taken."""

    values: tuple[str | None, ...]


Lane = DigitalLane | AnalogLane | CameraLane


@dataclass(frozen=True)
class ShotTimeline:
    """The timeline of one shot with every expression evaluated.

    ``durations`` are in seconds, one per step; every lane has one value per step.
    """

    step_names: tuple[str, ...]
    durations: tuple[float, ...]
    lanes: Mapping[str, Lane]

    @property
    def duration(self) -> float:
        """Total shot duration in seconds."""
        return float(sum(self.durations))

    @property
    def step_starts(self) -> tuple[float, ...]:
        """Start time of each step in seconds, relative to the trigger."""
        starts, t = [], 0.0
        for d in self.durations:
            starts.append(t)
            t += d
        return tuple(starts)


@runtime_checkable
class SequenceContext(Protocol):
    """What a :class:`DeviceCompiler` knows of the sequence.

    Implemented by the sequence layer; instances are picklable (compilers may
    run in worker processes).
    """

    @property
    def name(self) -> str:
        """The sequence name."""
        ...

    @property
    def globals(self) -> Mapping[str, ParameterValue]:
        """The evaluated global parameters (SI)."""
        ...

    @property
    def lane_names(self) -> Collection[str]:
        """Names of the timeline's lanes, known without a shot (empty without a timeline).

        Compilers use it in their constructor to raise ``DeviceNotUsed`` or reject
        a setting naming no lane, before any shot is compiled.
        """
        ...

    @property
    def camera_pictures(self) -> Mapping[str, tuple[str, ...]]:
        """Each camera lane's picture names in timeline order, known without a shot.

        Camera compilers use it to declare one data label per picture before the first shot.
        """
        ...

    def evaluate(self, expression: str, shot: Shot | None = None, unit: str | None = None) -> Any:
        """Evaluate ``expression`` with the shot's parameters (and globals).

        Returns the magnitude in SI base units (float), or a bool. With ``unit``
        the result is checked to have that dimension and converted to it.
        Raises ``ValueError`` naming the expression on any problem.
        """
        ...

    def timeline(self, shot: Shot) -> ShotTimeline:
        """The shot's timeline with durations and lane values evaluated."""
        ...
