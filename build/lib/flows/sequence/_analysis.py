"""The one walk of a spec that builds its :class:`~._plan.SequencePlan`.

The iteration is walked symbolically, once per step (never per shot), through
the :class:`~._steps.StepKind` interface only. Every variable gets a
:class:`~._steps.Sample` (a loop's first value) used to dimension-check the
expressions that reference it; value errors (division by zero...) are only
reported for expressions that do not depend on loop variables, since a sample
is not the value every shot will see. The same walk counts the shots (from
samples known to be exact) and records the loops as axes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pint

from flows._errors import ExpressionError

from ._device_expressions import expression_fields
from ._expressions import calibrated_quantities, compile_expression
from ._math import CONSTANTS
from ._plan import Axis, SequencePlan
from ._step_kind import MAX_SHOTS, Sample, StepKind, is_quantity
from ._steps import MAX_NESTING, Step, assigned_names, step_kind
from ._timeline import AnalogLaneSpec, RampValue
from ._units import is_unit, show_value, si_unit, ureg

if TYPE_CHECKING:
    from ._spec import SequenceSpec

__all__ = ["build_plan"]

logger = logging.getLogger(__name__)

_VALUE_ERRORS = (ZeroDivisionError, ValueError, OverflowError, ArithmeticError)
_REPEAT = "repeat"


class _Visitor:
    def __init__(self, spec: SequenceSpec, calibrated: Mapping[str, Any] | None) -> None:
        self.spec = spec
        self.calibrated = calibrated
        self.problems: list[str] = []
        self.samples: dict[str, Any] = {}  # iteration variable -> first sample
        self.references: set[str] = set()  # NAME of every calibrated.NAME
        self.axes: list[Axis] = []
        self.globals = set(spec.parameters)
        self.all_defined = assigned_names(spec.iteration) | self.globals
        self.shot_names: set[str] | None = None  # names defined at every shot
        self.shot_env: dict[str, Sample] = {}  # environment at the first shot
        self.declared: dict[str, str] = {f"parameters.{n}": n for n in spec.parameters}  # path -> variable
        self.unit_uses: dict[str, str] = {}  # name written as a unit ("us" in "20 us") -> first path

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def check(self, path: str, text: str, env: Mapping[str, Sample], unit: str | None = None) -> Sample:
        """Check one expression at ``path``; return its sample (value None when not computable)."""
        try:
            compiled = compile_expression(text)
        except ExpressionError as exc:
            self.problem(path, f"expression {text!r}: {exc.problem}")
            return Sample(None)
        self.references.update(compiled.calibrated)
        for name in compiled.units:
            self.unit_uses.setdefault(name, path)
        unknown = False
        for name in sorted(compiled.names):
            if name in env:
                continue
            if name not in self.all_defined and (name in CONSTANTS or is_unit(name)):
                continue  # a unit; a variable of the same name (defined elsewhere) would win
            unknown = True
            if name in self.all_defined:
                self.problem(path, f"expression {text!r}: variable {name!r} is not defined at this point")
            else:
                self.problem(path, f"expression {text!r}: unknown variable or unit {name!r}")
        if unknown:
            return Sample(None)
        used = [env[n] for n in compiled.names if n in env]
        varying = any(v.varying for v in used)
        if any(v.value is None for v in used) or (compiled.calibrated and self.calibrated is None):
            return Sample(None, varying)
        namespace = {n: env[n].value for n in compiled.names if n in env}
        try:
            value = compiled.evaluate(namespace, self.calibrated)
        except ExpressionError as exc:
            if not (varying and isinstance(exc.__cause__, _VALUE_ERRORS)):
                self.problem(path, str(exc))
            return Sample(None, varying)
        if unit is not None and not _has_unit(value, unit):
            self.problem(path, f"expression {text!r}: expected a value in {unit}, got {show_value(value)}")
            return Sample(None, varying)
        return Sample(value, varying, static=all(v.static for v in used))

    def assign(self, path: str, name: str, value: Sample, env: dict[str, Sample], loops: Sequence[str]) -> None:
        if name in self.globals:
            self.problem(path, f"variable {name!r} is already a global parameter")
        if name in loops:
            self.problem(path, f"variable {name!r} is the variable of an enclosing loop")
        env[name] = value
        self.samples.setdefault(name, value.value)
        self.declared.setdefault(path, name)

    def check_unit_shadowing(self) -> None:
        """Refuse a variable named like a unit that the spec also writes as a unit (``us: 1 ms`` and ``20 us``)."""
        for path, name in self.declared.items():
            if name in self.unit_uses and is_unit(name):
                self.problem(
                    path,
                    f"variable {name!r} is named like the unit {name!r} that {self.unit_uses[name]} uses "
                    f"('2 {name}' would mean 2 times the variable): rename the variable",
                )

    def walk(
        self, steps: Sequence[Step], path: str, env: dict[str, Sample], loops: tuple[str, ...], parent: int | None
    ) -> tuple[bool, int | None]:
        """Walk ``steps`` (mutating ``env``); return whether they contain a shot, and how many they make."""
        if len(loops) >= MAX_NESTING:
            self.problem(path, f"loops nested deeper than {MAX_NESTING} levels")
            return True, None
        has_shot, total = False, 0
        for i, step in enumerate(steps):
            node = step_kind(step)
            here = f"{path}[{i}].{node.kind}"
            if node.yields_shot:
                has_shot = True
                self.record_shot(env)
                total = None if total is None else total + 1
                continue
            samples = {field: self.check(f"{here}.{field}", text, env) for field, text in node.expressions()}
            for field, message in node.problems(samples):
                self.problem(f"{here}.{field}" if field else here, message)
            if node.body is None:
                bound = node.bind(lambda field, s=samples: s[field].value)
                for name, value in bound.items():
                    used = list(samples.values())
                    varying, static = any(s.varying for s in used), all(s.static for s in used)
                    self.assign(f"{here}.variable", name, Sample(value, varying, static), env, loops)
                continue
            size = self.size(node, here, samples)
            for name in assigned_names(node.body):  # set again on later rounds: not the same at every shot
                if name in env:
                    env[name] = replace(env[name], static=False)
            first = next(iter(samples.values()), Sample(None)).value
            for name in node.variables:
                self.assign(f"{here}.variable", name, Sample(first, varying=True), env, loops)
            index = self.add_axis(node, here, len(loops), size, first, parent)
            inner_loops = loops + (node.variables[0] if node.variables else "",)
            inner_shot, inner = self.walk(node.body, f"{here}.steps", env, inner_loops, index)
            if not inner_shot:
                self.problem(f"{here}.steps", "the loop yields no shot (add a 'shot' step)")
            has_shot = True
            total = None if total is None or size is None or inner is None else total + size * inner
        return has_shot, total

    def size(self, node: StepKind, path: str, samples: Mapping[str, Sample]) -> int | None:
        """The number of values of a loop, when its expressions are exact before running."""
        if not all(s.static and s.value is not None for s in samples.values()):
            return None
        try:
            return len(node.loop_values(lambda field: samples[field].value, path)[0])
        except Exception:  # noqa: BLE001 - e.g. a boolean bound the checks let through: the size is unknown
            return None

    def add_axis(self, node: StepKind, path: str, depth: int, size: int | None, first: Any, parent: int | None) -> int:
        name = node.variables[0] if node.variables else self.repeat_name()
        unit = si_unit(first) if isinstance(first, pint.Quantity) else ""
        axis = Axis(
            name=name,
            variables=node.variables,
            kind=node.kind,
            depth=depth,
            size=size,
            unit=unit,
            shuffled=node.shuffled,
            seed=node.shuffle_seed,
            path=path,
            description=node.describe(),
            parent=parent,
        )
        self.axes.append(axis)
        return len(self.axes) - 1

    def repeat_name(self) -> str:
        taken = {a.name for a in self.axes} | self.all_defined
        name, n = _REPEAT, 1
        while name in taken:
            n += 1
            name = f"{_REPEAT}_{n}"
        return name

    def record_shot(self, env: Mapping[str, Sample]) -> None:
        if self.shot_names is None:
            self.shot_names = set(env)
            self.shot_env = dict(env)
        else:
            self.shot_names &= set(env)

    def shot_scope(self) -> dict[str, Sample]:
        names = self.shot_names or set()
        return {n: self.shot_env[n] for n in names if n in self.shot_env}

    def check_timeline(self, env: dict[str, Sample]) -> None:
        timeline = self.spec.timeline
        for i, step in enumerate(timeline.steps):
            path = f"timeline.steps[{i}].duration"
            duration = self.check(path, step.duration, env, unit="s")
            if duration.static and is_quantity(duration.value) and duration.value.magnitude < 0:
                self.problem(path, f"expression {step.duration!r}: a duration must not be negative")
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
                    self.check_lane_unit(p, text, self.check(p, text, env), lane.unit)

    def check_lane_unit(self, path: str, text: str, sample: Sample, unit: str | None) -> None:
        value = sample.value
        if value is None:
            return
        if isinstance(value, bool):
            self.problem(path, f"expression {text!r}: an analog value must be a number, not a boolean")
        elif unit is not None and not value.dimensionless and not _has_unit(value, unit):
            self.problem(path, f"expression {text!r}: expected a value in {unit}, got {show_value(value)}")

    def check_devices(self, env: dict[str, Sample]) -> None:
        for name, config in self.spec.devices.items():
            for path, text, spec in expression_fields(config, f"devices.{name}"):
                self.check(path, text, env, unit=spec.unit)


def _has_unit(value: Any, unit: str) -> bool:
    if isinstance(value, bool):
        return False
    return value.dimensionality == ureg.parse_units(unit).dimensionality


def _unit_of(value: Any) -> str:
    return si_unit(value) if isinstance(value, pint.Quantity) else ""


def build_plan(spec: SequenceSpec, calibrated: Mapping[str, Any] | None) -> SequencePlan:
    """Walk ``spec`` once with calibration values ``calibrated`` (raw: numbers, Quantities or texts)."""
    visitor = _Visitor(spec, calibrated_quantities(calibrated))
    env: dict[str, Sample] = {}
    for name, text in spec.parameters.items():
        sample = visitor.check(f"parameters.{name}", text, env)
        env[name] = replace(sample, static=sample.value is not None)
    global_env = dict(env)
    has_shot, count = visitor.walk(spec.iteration, "iteration", env, (), None)
    if not has_shot:
        visitor.problem("iteration", "the sequence yields no shot (add a 'shot' step)")
    if count is not None and count > MAX_SHOTS:
        visitor.problem(
            "iteration", f"the sequence makes about 10**{len(str(count)) - 1} shots, more than {MAX_SHOTS} (2**53)"
        )
        count = None
    scope = visitor.shot_scope()
    visitor.check_timeline(scope)
    visitor.check_devices(scope)
    timeout_env = {n: env[n] for n in spec.parameters}
    timeout = visitor.check("execution.shot_timeout", spec.execution.shot_timeout, timeout_env, unit="s")
    if is_quantity(timeout.value) and timeout.value.magnitude <= 0:
        visitor.problem(
            "execution.shot_timeout",
            f"expression {spec.execution.shot_timeout!r}: the time limit of a shot must be positive",
        )
    visitor.check_unit_shadowing()
    if any(s.value is None for s in global_env.values()):
        count = None  # the globals cannot be evaluated: nothing can be counted
    units = {name: _unit_of(s.value) for name, s in global_env.items()}
    units.update({name: _unit_of(value) for name, value in visitor.samples.items()})
    return SequencePlan(
        spec=spec,
        calibrated=None if calibrated is None else dict(calibrated),
        globals=tuple(spec.parameters),
        variables=tuple(visitor.samples),
        units=units,
        global_values={n: s.value for n, s in global_env.items() if s.value is not None},
        calibrated_references=frozenset(visitor.references),
        shot_count=count,
        axes=tuple(visitor.axes),
        problems=tuple(visitor.problems),
    )
