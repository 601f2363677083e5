""":class:`SequenceRuntime`: the :class:`devices.SequenceContext` of one spec."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import pint

from devices import AnalogLane, CameraLane, DigitalLane, Lane, Ramp, Shot, ShotTimeline
from flows._errors import ExpressionError

from ._expressions import calibrated_quantities, compile_expression
from ._iteration import plan_globals
from ._plan import SequencePlan, plan_sequence
from ._spec import SequenceSpec
from ._timeline import AnalogLaneSpec, CameraLaneSpec, DigitalLaneSpec, RampValue
from ._units import Quantity, si_magnitude, ureg

__all__ = ["SequenceRuntime"]

logger = logging.getLogger(__name__)


@lru_cache(maxsize=256)
def _parse_unit(unit: str) -> Any:
    return ureg.parse_units(unit)


class _ShotNamespace(Mapping[str, Any]):
    """Globals and a shot's parameters, rebuilt as Quantities only when an expression reads them."""

    def __init__(self, globals_: Mapping[str, Any], parameters: Mapping[str, Any], units: Mapping[str, Any]) -> None:
        self.globals = globals_
        self.parameters = parameters
        self.units = units

    def __getitem__(self, name: str) -> Any:
        if name in self.parameters:
            value = self.parameters[name]
            unit = self.units.get(name)
            if isinstance(value, bool) or unit is None:
                return value
            return Quantity(value, unit)
        return self.globals[name]

    def __contains__(self, name: object) -> bool:
        return name in self.parameters or name in self.globals

    def __iter__(self) -> Iterator[str]:
        yield from self.parameters
        yield from (n for n in self.globals if n not in self.parameters)

    def __len__(self) -> int:
        return len(set(self.parameters) | set(self.globals))


class SequenceRuntime:
    """Evaluates a validated spec's expressions for shots; implements ``devices.SequenceContext``.

    Reads the spec's :class:`~flows.sequence.SequencePlan` (made once, see
    :func:`~flows.sequence.plan_sequence`). Picklable: the plan (with its spec)
    and the calibration values are pickled, so a compile worker analyses
    nothing; parsed expressions and evaluated constants are rebuilt lazily there.
    """

    def __init__(self, spec: SequenceSpec, calibrated: Mapping[str, Any] | None = None) -> None:
        self.plan: SequencePlan = plan_sequence(spec, calibrated)
        self.calibrated = dict(calibrated or {})
        self._reset()

    def _reset(self) -> None:
        self._globals: dict[str, Any] | None = None
        self._units: dict[str, Any] | None = None
        self._calibrated_q: dict[str, Any] | None = None
        self._timeline_cache: tuple[int, Mapping[str, Any], ShotTimeline] | None = None
        self._constants: dict[str, Any] = {}
        self._constant_si: dict[tuple[str, str | None], Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"plan": self.plan, "calibrated": self.calibrated}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.plan = state["plan"]
        self.calibrated = state["calibrated"]
        self._reset()

    @property
    def spec(self) -> SequenceSpec:
        """The spec."""
        return self.plan.spec

    @property
    def name(self) -> str:
        """The sequence name."""
        return self.spec.name

    @property
    def lane_names(self) -> frozenset[str]:
        """The timeline's lane names (known without a shot)."""
        return frozenset(self.spec.timeline.lanes)

    @property
    def camera_pictures(self) -> dict[str, tuple[str, ...]]:
        """Each camera lane's picture names (the lane's non-null values), in timeline order."""
        return {
            name: tuple(v for v in lane.values if v is not None)
            for name, lane in self.spec.timeline.lanes.items()
            if isinstance(lane, CameraLaneSpec)
        }

    @property
    def _calibrated(self) -> dict[str, Any]:
        if self._calibrated_q is None:
            self._calibrated_q = calibrated_quantities(self.calibrated)
        return self._calibrated_q

    @property
    def _global_quantities(self) -> dict[str, Any]:
        if self._globals is None:
            self._globals = plan_globals(self.plan, self._calibrated)
        return self._globals

    @property
    def globals(self) -> dict[str, float | bool]:
        """The evaluated global parameters, SI magnitudes (floats) or bools."""
        return {n: si_magnitude(v) for n, v in self._global_quantities.items()}

    @property
    def units(self) -> dict[str, str]:
        """Iteration variable -> SI unit string (see :func:`flows.parameter_units`)."""
        return {n: (f"{u:~}" if u is not None else "") for n, u in self._pint_units.items()}

    @property
    def _pint_units(self) -> dict[str, Any]:
        if self._units is None:
            units = self.plan.parameter_units()
            self._units = {n: (_parse_unit(u) if u else None) for n, u in units.items()}
        return self._units

    def _namespace(self, shot: Shot | None) -> Mapping[str, Any]:
        if shot is None:
            return self._global_quantities
        return _ShotNamespace(self._global_quantities, shot.parameters, self._pint_units)

    def quantity(self, expression: str, shot: Shot | None = None) -> Any:
        """Evaluate ``expression`` for ``shot`` to a pint Quantity or bool; raises :class:`ExpressionError`.

        Expressions that read no iteration variable are evaluated once and remembered.
        """
        compiled = compile_expression(expression)
        if shot is None or compiled.names.isdisjoint(self._pint_units):
            if expression not in self._constants:
                self._constants[expression] = compiled.evaluate(self._global_quantities, self._calibrated)
            return self._constants[expression]
        return compiled.evaluate(self._namespace(shot), self._calibrated)

    def evaluate(self, expression: str, shot: Shot | None = None, unit: str | None = None) -> Any:
        """Evaluate ``expression`` with globals and the shot's parameters.

        Returns the SI magnitude (float) or a bool; with ``unit`` the value must
        have that dimension and is returned in it. Raises :class:`ExpressionError`
        (a ``ValueError``) naming the expression.
        """
        compiled = compile_expression(expression)
        constant = shot is None or compiled.names.isdisjoint(self._pint_units)
        if constant and (expression, unit) in self._constant_si:
            return self._constant_si[expression, unit]
        result = self._to_unit(expression, self.quantity(expression, shot), unit)
        if constant:
            self._constant_si[expression, unit] = result
        return result

    @staticmethod
    def _to_unit(expression: str, value: Any, unit: str | None) -> Any:
        if unit is None:
            return si_magnitude(value)
        if isinstance(value, bool):
            raise ExpressionError(expression, f"expected a value in {unit}, got a boolean")
        try:
            return float(value.to(unit).magnitude)
        except (pint.DimensionalityError, pint.UndefinedUnitError) as exc:
            raise ExpressionError(expression, f"expected a value in {unit}, got {value:~}") from exc

    def timeline(self, shot: Shot) -> ShotTimeline:
        """The shot's timeline with durations (s) and lane values (SI) evaluated; cached for the last shot."""
        cached = self._timeline_cache
        if cached is not None and cached[0] == shot.index and cached[1] == shot.parameters:
            return cached[2]
        spec = self.spec.timeline
        durations = []
        for i, step in enumerate(spec.steps):
            seconds = self._at(f"timeline.steps[{i}].duration", step.duration, shot, "s")
            if seconds < 0:
                raise ExpressionError(step.duration, f"negative duration {seconds} s", f"timeline.steps[{i}].duration")
            durations.append(seconds)
        lanes: dict[str, Lane] = {}
        for name, lane in spec.lanes.items():
            match lane:
                case DigitalLaneSpec(values=values):
                    lanes[name] = DigitalLane(tuple(values))
                case CameraLaneSpec(values=values):
                    lanes[name] = CameraLane(tuple(values))
                case AnalogLaneSpec():
                    lanes[name] = self._analog(name, lane, shot)
        result = ShotTimeline(tuple(s.name for s in spec.steps), tuple(durations), lanes)
        self._timeline_cache = (shot.index, dict(shot.parameters), result)
        return result

    def _analog(self, name: str, lane: AnalogLaneSpec, shot: Shot) -> AnalogLane:
        unit = _parse_unit(lane.unit) if lane.unit else None
        si_unit = f"{Quantity(1.0, unit).to_base_units().units:~}" if unit is not None else ""

        def value(path: str, text: str) -> float:
            key = (text, f"analog:{lane.unit}")
            if key in self._constant_si:
                return self._constant_si[key]
            try:
                q = self.quantity(text, shot)
            except ExpressionError as exc:
                raise exc.at(path) from exc
            if isinstance(q, bool):
                raise ExpressionError(text, "an analog value must be a number", path)
            if unit is not None and q.dimensionless:
                q = q.to("dimensionless").magnitude * unit
            result = float(si_magnitude(q))
            if compile_expression(text).names.isdisjoint(self._pint_units):
                self._constant_si[key] = result
            return result

        values: list[float | Ramp] = []
        for j, v in enumerate(lane.values):
            path = f"timeline.lanes.{name}.values[{j}]"
            if isinstance(v, RampValue):
                values.append(Ramp(value(f"{path}.ramp.start", v.ramp.start), value(f"{path}.ramp.stop", v.ramp.stop)))
            else:
                values.append(value(path, v))
        return AnalogLane(tuple(values), si_unit)

    def _at(self, path: str, text: str, shot: Shot, unit: str) -> float:
        try:
            return self.evaluate(text, shot, unit)
        except ExpressionError as exc:
            raise exc.at(path) from exc
