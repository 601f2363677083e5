"""Walking a spec's iteration: shots lazily, their count without materialising them."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pint

from devices import Shot
from flows._errors import ExpressionError

from ._expressions import compile_expression
from ._spec import ArangeStep, DeclareStep, LinspaceStep, RepeatStep, SequenceSpec, Step, ValuesStep
from ._units import Quantity, si_magnitude, si_unit
from ._validate import analyse

__all__ = ["calibrated_quantities", "count_shots", "evaluate_globals", "iter_shots", "parameter_units"]

logger = logging.getLogger(__name__)

_UNKNOWN = object()  # count_shots: a value that varies from shot to shot


def calibrated_quantities(calibrated: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Calibration values for ``calibrated.NAME``: Quantities, bools, numbers (dimensionless) or expression texts."""
    if calibrated is None:
        return None
    result: dict[str, Any] = {}
    for name, value in calibrated.items():
        if isinstance(value, str):
            value = compile_expression(value).evaluate()
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        result[name] = value
    return result


def _evaluate(text: str, path: str, namespace: Mapping[str, Any], calibrated: Mapping[str, Any] | None) -> Any:
    try:
        return compile_expression(text).evaluate(namespace, calibrated)
    except ExpressionError as exc:
        raise exc.at(path) from exc


def evaluate_globals(spec: SequenceSpec, calibrated: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The global parameters as pint Quantities (or bools), in definition order."""
    namespace: dict[str, Any] = {}
    for name, text in spec.parameters.items():
        namespace[name] = _evaluate(text, f"parameters.{name}", namespace, calibrated)
    return namespace


def _base(value: Any) -> tuple[float, Any]:
    """(SI magnitude, SI unit) of a Quantity."""
    base = value.to_base_units()
    return float(base.magnitude), base.units


def _loop_values(step: Step, path: str, namespace: Mapping[str, Any], calibrated: Any) -> tuple[Sequence[Any], Any]:
    """The values of a loop as a lazy sequence of SI magnitudes (or bools) and their SI unit."""
    match step:
        case LinspaceStep(linspace=loop):
            start = _evaluate(loop.start, f"{path}.linspace.start", namespace, calibrated)
            stop = _evaluate(loop.stop, f"{path}.linspace.stop", namespace, calibrated)
            (a, unit), (b, _) = _base(start), _base(_same_dimension(stop, start, f"{path}.linspace.stop", loop.stop))
            if loop.num == 1:
                return [a], unit
            delta = (b - a) / (loop.num - 1)
            return _Linear(a, delta, loop.num, last=b), unit
        case ArangeStep(arange=loop):
            p = f"{path}.arange"
            start = _evaluate(loop.start, f"{p}.start", namespace, calibrated)
            stop = _same_dimension(
                _evaluate(loop.stop, f"{p}.stop", namespace, calibrated), start, f"{p}.stop", loop.stop
            )
            step_q = _same_dimension(
                _evaluate(loop.step, f"{p}.step", namespace, calibrated), start, f"{p}.step", loop.step
            )
            (a, unit), (b, _), (d, _) = _base(start), _base(stop), _base(step_q)
            if d == 0:
                raise ExpressionError(loop.step, "step must not be zero", f"{p}.step")
            return _Linear(a, d, max(0, math.ceil((b - a) / d))), unit
        case ValuesStep(values=loop):
            values = [
                _evaluate(text, f"{path}.values.values[{i}]", namespace, calibrated)
                for i, text in enumerate(loop.values)
            ]
            unit = None if isinstance(values[0], bool) else _base(values[0])[1]
            return [si_magnitude(v) for v in values], unit
    raise TypeError(f"not a loop: {step!r}")  # pragma: no cover


def _same_dimension(value: Any, reference: Any, path: str, text: str) -> Any:
    if isinstance(value, bool) or isinstance(reference, bool) or value.dimensionality != reference.dimensionality:
        raise ExpressionError(text, f"expected the dimension of the start value ({reference:~}), got {value}", path)
    return value


class _Linear(Sequence[float]):
    """``start + i * step`` for ``i < num`` (like numpy.linspace/arange), without a list."""

    def __init__(self, start: float, step: float, num: int, last: float | None = None) -> None:
        self.start, self.step, self.num, self.last = start, step, num, last

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.num))]
        if i < 0:
            i += self.num
        if not 0 <= i < self.num:
            raise IndexError(i)
        if self.last is not None and i == self.num - 1:
            return self.last
        return self.start + i * self.step


class _LazyNamespace(dict[str, Any]):
    """Variables by name; loop values are stored as (SI magnitude, unit) and become Quantities when read."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.raw: dict[str, tuple[float, Any]] = {}

    def set_raw(self, name: str, value: Any, unit: Any) -> None:
        if isinstance(value, bool) or unit is None:
            self[name] = value
            self.raw.pop(name, None)
        else:
            self.raw[name] = (value, unit)
            self.pop(name, None)

    def __setitem__(self, name: str, value: Any) -> None:
        self.raw.pop(name, None)
        super().__setitem__(name, value)

    def __contains__(self, name: object) -> bool:
        return name in self.raw or super().__contains__(name)

    def __missing__(self, name: str) -> Any:
        value, unit = self.raw[name]  # KeyError when truly missing
        return Quantity(value, unit)


class _Walk:
    def __init__(self, spec: SequenceSpec, calibrated: Mapping[str, Any] | None) -> None:
        self.calibrated = calibrated
        self.namespace = _LazyNamespace(evaluate_globals(spec, calibrated))
        self.parameters: dict[str, float | bool] = {}
        self.index = 0

    def steps(self, steps: Sequence[Step], path: str) -> Iterator[Shot]:
        for i, step in enumerate(steps):
            here = f"{path}[{i}]"
            match step:
                case "shot":
                    yield Shot(self.index, dict(self.parameters))
                    self.index += 1
                case DeclareStep(declare=d):
                    value = _evaluate(d.value, f"{here}.declare.value", self.namespace, self.calibrated)
                    self.namespace[d.variable] = value
                    self.parameters[d.variable] = si_magnitude(value)
                case RepeatStep(repeat=r):
                    for _ in range(r.count):
                        yield from self.steps(r.steps, f"{here}.repeat.steps")
                case LinspaceStep(linspace=loop) | ArangeStep(arange=loop) | ValuesStep(values=loop):
                    values, unit = _loop_values(step, here, self.namespace, self.calibrated)
                    order: Sequence[int] = range(len(values))
                    if loop.shuffle:
                        order = list(order)
                        random.Random(loop.seed).shuffle(order)
                    (key,) = type(step).model_fields
                    for j in order:
                        value = values[j]
                        self.namespace.set_raw(loop.variable, value, unit)
                        self.parameters[loop.variable] = value
                        yield from self.steps(loop.steps, f"{here}.{key}.steps")


def iter_shots(spec: SequenceSpec, calibrated: Mapping[str, Any] | None = None) -> Iterator[Shot]:
    """Yield the spec's shots lazily, in order, with parameters in SI magnitudes.

    Only iteration variables (declares and loop variables) are in a shot's
    parameters, not globals. Raises :class:`ExpressionError` naming the field
    path when an expression fails for a particular shot.
    """
    return _Walk(spec, calibrated_quantities(calibrated)).steps(spec.iteration, "iteration")


def _assigned(steps: Sequence[Step]) -> set[str]:
    names: set[str] = set()
    for step in steps:
        match step:
            case DeclareStep(declare=d):
                names.add(d.variable)
            case LinspaceStep(linspace=loop) | ArangeStep(arange=loop) | ValuesStep(values=loop):
                names.add(loop.variable)
                names |= _assigned(loop.steps)
            case RepeatStep(repeat=r):
                names |= _assigned(r.steps)
    return names


def _known(text: str, env: Mapping[str, Any], calibrated: Any) -> Any:
    compiled = compile_expression(text)
    if any(env.get(n) is _UNKNOWN for n in compiled.names) or (compiled.calibrated and calibrated is None):
        return _UNKNOWN
    try:
        return compiled.evaluate(env, calibrated)
    except ExpressionError:
        return _UNKNOWN


def _count(steps: Sequence[Step], env: dict[str, Any], calibrated: Any) -> int | None:
    total = 0
    for step in steps:
        match step:
            case "shot":
                total += 1
            case DeclareStep(declare=d):
                env[d.variable] = _known(d.value, env, calibrated)
            case RepeatStep(repeat=r):
                for name in _assigned(r.steps):
                    env[name] = _UNKNOWN
                inner = _count(r.steps, env, calibrated)
                if inner is None:
                    return None
                total += r.count * inner
            case LinspaceStep(linspace=loop) | ArangeStep(arange=loop) | ValuesStep(values=loop):
                bounds = {k: getattr(loop, k) for k in ("start", "stop", "step") if hasattr(loop, k)}
                values = getattr(loop, "values", None) if isinstance(step, ValuesStep) else None
                texts = list(bounds.values()) + list(values or [])
                if any(_known(t, env, calibrated) is _UNKNOWN for t in texts):
                    return None
                try:
                    n = len(_loop_values(step, "iteration", env, calibrated)[0])
                except ExpressionError:
                    return None
                for name in _assigned(loop.steps) | {loop.variable}:
                    env[name] = _UNKNOWN
                inner = _count(loop.steps, env, calibrated)
                if inner is None:
                    return None
                total += n * inner
    return total


def count_shots(spec: SequenceSpec, calibrated: Mapping[str, Any] | None = None) -> int | None:
    """The exact number of shots, or ``None`` when a loop's bounds depend on loop variables.

    Computed from the loop bounds without walking the shots (instant for 10^9 shots).
    """
    calibrated = calibrated_quantities(calibrated)
    try:
        env: dict[str, Any] = evaluate_globals(spec, calibrated)
    except ExpressionError:
        return None
    return _count(spec.iteration, env, calibrated)


def parameter_units(spec: SequenceSpec, calibrated: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Each iteration variable -> its SI unit (``"Hz"``, ``"s"``, ``""`` if dimensionless or bool).

    Variables whose unit cannot be known before running (they depend on
    calibration values not given) map to ``""``.
    """
    samples = analyse(spec, calibrated_quantities(calibrated)).samples
    return {name: si_unit(sample) if isinstance(sample, pint.Quantity) else "" for name, sample in samples.items()}
