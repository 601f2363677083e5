"""Whole-spec checks: names defined before use, dimensions, loops that yield shots.

The iteration is walked symbolically, once per step (never per shot): every
variable gets a *sample* value (a loop's first value) used to dimension-check
the expressions that reference it. Value errors (division by zero...) are only
reported for expressions that do not depend on loop variables, since a sample
is not the value every shot will see.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import UnionType
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import pint
from pydantic import BaseModel

from devices import ExpressionSpec
from flows._errors import ExpressionError

from ._expressions import compile_expression
from ._math import CONSTANTS
from ._spec import MAX_NESTING, AnalogLaneSpec, ArangeStep, DeclareStep, LinspaceStep, RampValue, RepeatStep, ValuesStep
from ._units import is_unit, ureg

if TYPE_CHECKING:
    from ._spec import SequenceSpec, Step

__all__ = ["Analysis", "analyse", "check_spec"]

_VALUE_ERRORS = (ZeroDivisionError, ValueError, OverflowError, ArithmeticError)


@dataclass
class _Var:
    sample: Any  # Quantity | bool | None (unknown: depends on calibration or failed)
    varying: bool  # depends on a loop variable


@dataclass
class Analysis:
    """Result of the symbolic walk: problems found and a sample of every iteration variable."""

    problems: list[str] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)  # iteration variable -> first sample
    shot_names: set[str] | None = None  # names defined at every shot
    shot_env: dict[str, _Var] | None = None  # environment at the first shot
    all_defined: set[str] = field(default_factory=set)
    calibrated: set[str] = field(default_factory=set)  # NAME of every calibrated.NAME referenced


def _defined_names(steps: Sequence[Step]) -> Iterator[str]:
    for step in steps:
        match step:
            case DeclareStep(declare=d):
                yield d.variable
            case LinspaceStep(linspace=loop) | ArangeStep(arange=loop) | ValuesStep(values=loop):
                yield loop.variable
                yield from _defined_names(loop.steps)
            case RepeatStep(repeat=r):
                yield from _defined_names(r.steps)


class _Walker:
    def __init__(self, spec: SequenceSpec, calibrated: Mapping[str, Any] | None) -> None:
        self.spec = spec
        self.calibrated = calibrated
        self.result = Analysis()
        self.globals = set(spec.parameters)
        self.result.all_defined = set(_defined_names(spec.iteration)) | self.globals

    def problem(self, path: str, message: str) -> None:
        self.result.problems.append(f"{path}: {message}")

    def check(self, path: str, text: str, env: Mapping[str, _Var], unit: str | None = None) -> _Var:
        """Check one expression at ``path``; return its sample (None when not computable)."""
        try:
            compiled = compile_expression(text)
        except ExpressionError as exc:
            self.problem(path, f"expression {text!r}: {exc.problem}")
            return _Var(None, False)
        self.result.calibrated.update(compiled.calibrated)
        unknown = False
        for name in sorted(compiled.names):
            if name in env:
                continue
            if name not in self.result.all_defined and (name in CONSTANTS or is_unit(name)):
                continue  # a unit; a variable of the same name (defined elsewhere) would win
            unknown = True
            if name in self.result.all_defined:
                self.problem(path, f"expression {text!r}: variable {name!r} is not defined at this point")
            else:
                self.problem(path, f"expression {text!r}: unknown variable or unit {name!r}")
        if unknown:
            return _Var(None, False)
        used = [env[n] for n in compiled.names if n in env]
        varying = any(v.varying for v in used)
        if any(v.sample is None for v in used) or (compiled.calibrated and self.calibrated is None):
            return _Var(None, varying)
        namespace = {n: env[n].sample for n in compiled.names if n in env}
        try:
            sample = compiled.evaluate(namespace, self.calibrated)
        except ExpressionError as exc:
            if not (varying and isinstance(exc.__cause__, _VALUE_ERRORS)):
                self.problem(path, str(exc))
            return _Var(None, varying)
        if unit is not None and not self.has_unit(sample, unit):
            self.problem(path, f"expression {text!r}: expected a value in {unit}, got {_show(sample)}")
            return _Var(None, varying)
        return _Var(sample, varying)

    @staticmethod
    def has_unit(sample: Any, unit: str) -> bool:
        if isinstance(sample, bool):
            return False
        return sample.dimensionality == ureg.parse_units(unit).dimensionality

    def same_dimension(self, path: str, samples: Sequence[tuple[str, _Var]]) -> None:
        known = [(n, v.sample) for n, v in samples if isinstance(v.sample, pint.Quantity)]
        for name, sample in known[1:]:
            if sample.dimensionality != known[0][1].dimensionality:
                self.problem(
                    path,
                    f"{known[0][0]} ({_show(known[0][1])}) and {name} ({_show(sample)}) have different dimensions",
                )
                return

    def assign(self, path: str, name: str, value: _Var, env: dict[str, _Var], loops: Sequence[str]) -> None:
        if name in self.globals:
            self.problem(path, f"variable {name!r} is already a global parameter")
        if name in loops:
            self.problem(path, f"variable {name!r} is the variable of an enclosing loop")
        env[name] = value
        self.result.samples.setdefault(name, value.sample)

    def walk(self, steps: Sequence[Step], path: str, env: dict[str, _Var], loops: tuple[str, ...]) -> bool:
        """Walk ``steps`` (mutating ``env``); return whether they contain a shot."""
        if len(loops) >= MAX_NESTING:
            self.problem(path, f"loops nested deeper than {MAX_NESTING} levels")
            return True
        has_shot = False
        for i, step in enumerate(steps):
            here = f"{path}[{i}]"
            match step:
                case "shot":
                    has_shot = True
                    self.record_shot(env)
                case DeclareStep(declare=d):
                    value = self.check(f"{here}.declare.value", d.value, env)
                    self.assign(f"{here}.declare.variable", d.variable, value, env, loops)
                case LinspaceStep(linspace=loop):
                    p = f"{here}.linspace"
                    bounds = [(k, self.check(f"{p}.{k}", getattr(loop, k), env)) for k in ("start", "stop")]
                    self.same_dimension(p, bounds)
                    has_shot |= self.loop(p, loop, bounds[0][1], env, loops)
                case ArangeStep(arange=loop):
                    p = f"{here}.arange"
                    bounds = [(k, self.check(f"{p}.{k}", getattr(loop, k), env)) for k in ("start", "stop", "step")]
                    self.same_dimension(p, bounds)
                    self.check_arange(p, *(v for _, v in bounds))
                    has_shot |= self.loop(p, loop, bounds[0][1], env, loops)
                case ValuesStep(values=loop):
                    p = f"{here}.values"
                    values = [
                        (f"values[{j}]", self.check(f"{p}.values[{j}]", v, env)) for j, v in enumerate(loop.values)
                    ]
                    self.same_dimension(p, values)
                    has_shot |= self.loop(p, loop, values[0][1], env, loops)
                case RepeatStep(repeat=r):
                    if not self.walk(r.steps, f"{here}.repeat.steps", env, loops + ("",)):
                        self.problem(f"{here}.repeat.steps", "the loop yields no shot (add a 'shot' step)")
                    has_shot = True
        return has_shot

    def loop(self, path: str, loop: Any, first: _Var, env: dict[str, _Var], loops: tuple[str, ...]) -> bool:
        self.assign(f"{path}.variable", loop.variable, _Var(first.sample, True), env, loops)
        if not self.walk(loop.steps, f"{path}.steps", env, loops + (loop.variable,)):
            self.problem(f"{path}.steps", "the loop yields no shot (add a 'shot' step)")
        return True

    def check_arange(self, path: str, start: _Var, stop: _Var, step: _Var) -> None:
        if step.sample is None or isinstance(step.sample, bool):
            return
        step_si = step.sample.to_base_units().magnitude
        if step_si == 0:
            if not step.varying:
                self.problem(f"{path}.step", "step must not be zero")
            return
        if any(v.varying or not isinstance(v.sample, pint.Quantity) for v in (start, stop)):
            return
        try:
            count = math.ceil((stop.sample - start.sample).to_base_units().magnitude / step_si)
        except (pint.DimensionalityError, ArithmeticError, ValueError):
            return
        if count <= 0:
            self.problem(
                path,
                f"the loop yields no value (from {_show(start.sample)} to {_show(stop.sample)} "
                f"by {_show(step.sample)})",
            )

    def record_shot(self, env: Mapping[str, _Var]) -> None:
        names = set(env)
        if self.result.shot_names is None:
            self.result.shot_names = names
            self.result.shot_env = dict(env)
        else:
            self.result.shot_names &= names

    def shot_scope(self) -> dict[str, _Var]:
        names = self.result.shot_names or set()
        first = self.result.shot_env or {}
        return {n: first[n] for n in names if n in first}

    def check_timeline(self, env: dict[str, _Var]) -> None:
        timeline = self.spec.timeline
        for i, step in enumerate(timeline.steps):
            self.check(f"timeline.steps[{i}].duration", step.duration, env, unit="s")
        for name, lane in timeline.lanes.items():
            if not isinstance(lane, AnalogLaneSpec):
                continue
            for j, value in enumerate(lane.values):
                path = f"timeline.lanes.{name}.values[{j}]"
                texts = (
                    [(f"{path}.ramp.start", value.ramp.start), (f"{path}.ramp.stop", value.ramp.stop)]
                    if isinstance(value, RampValue)
                    else [(path, value)]
                )
                for p, text in texts:
                    sample = self.check(p, text, env)
                    self.check_lane_unit(p, text, sample, lane.unit)

    def check_lane_unit(self, path: str, text: str, sample: _Var, unit: str | None) -> None:
        if sample.sample is None:
            return
        if isinstance(sample.sample, bool):
            self.problem(path, f"expression {text!r}: an analog value must be a number, not a boolean")
        elif unit is not None and not sample.sample.dimensionless and not self.has_unit(sample.sample, unit):
            self.problem(path, f"expression {text!r}: expected a value in {unit}, got {_show(sample.sample)}")

    def check_devices(self, env: dict[str, _Var]) -> None:
        for name, config in self.spec.devices.items():
            for path, text, spec in _expression_fields(config, f"devices.{name}"):
                self.check(path, text, env, unit=spec.unit)


def _expression_specs(annotation: Any, metadata: Sequence[Any] = ()) -> list[ExpressionSpec]:
    """ExpressionSpec markers on a field: its metadata, ``Annotated[...]`` or an optional ``X | None``."""
    found = [m for m in metadata if isinstance(m, ExpressionSpec)]
    found += [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, ExpressionSpec)]
    if not found and get_origin(annotation) in (Union, UnionType):
        for arg in get_args(annotation):
            found += _expression_specs(arg)
    return found


def _expression_fields(model: BaseModel, path: str) -> Iterator[tuple[str, str, ExpressionSpec]]:
    """Every expression in a device configuration: (field path, text, spec), nested models included."""
    for field_name, info in type(model).model_fields.items():
        value = getattr(model, field_name)
        here = f"{path}.{field_name}"
        specs = _expression_specs(info.annotation, info.metadata)
        if specs and isinstance(value, str):
            yield here, value, specs[0]
        elif isinstance(value, BaseModel):
            yield from _expression_fields(value, here)
        elif isinstance(value, (list, tuple, dict)):
            container = next(
                (a for a in (info.annotation, *get_args(info.annotation)) if get_origin(a) in (list, tuple, dict)), None
            )
            inner = [s for arg in get_args(container) for s in _expression_specs(arg)] if container else []
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                item_path = f"{here}.{key}" if isinstance(value, dict) else f"{here}[{key}]"
                if inner and isinstance(item, str):
                    yield item_path, item, inner[0]
                elif isinstance(item, BaseModel):
                    yield from _expression_fields(item, item_path)


def _show(value: Any) -> str:
    if isinstance(value, pint.Quantity):
        if value.dimensionless:
            return f"{value.to('dimensionless').magnitude:g} (dimensionless)"
        return f"{value:~g}"
    return repr(value)


def analyse(spec: SequenceSpec, calibrated: Mapping[str, Any] | None = None) -> Analysis:
    """Walk ``spec`` symbolically; returns problems and a sample of every iteration variable."""
    walker = _Walker(spec, calibrated)
    env: dict[str, _Var] = {}
    for name, text in spec.parameters.items():
        env[name] = walker.check(f"parameters.{name}", text, env)
    if not walker.walk(spec.iteration, "iteration", env, ()):
        walker.problem("iteration", "the sequence yields no shot (add a 'shot' step)")
    scope = walker.shot_scope()
    walker.check_timeline(scope)
    walker.check_devices(scope)
    walker.check("execution.shot_timeout", spec.execution.shot_timeout, {n: env[n] for n in spec.parameters}, unit="s")
    return walker.result


def calibrated_references(spec: SequenceSpec) -> set[str]:
    """The names ``NAME`` of every ``calibrated.NAME`` that an expression of ``spec`` uses."""
    return analyse(spec).calibrated


def check_spec(spec: SequenceSpec) -> list[str]:
    """Every problem of ``spec`` as ``field.path: problem`` lines (empty when valid)."""
    return analyse(spec).problems
