"""The shots of a spec, lazily, and the readers of its plan (count, units, globals).

The shots are made by walking the steps through the :class:`~._steps.StepKind`
interface; everything known without running (count, units, globals) comes
from the spec's :class:`~._plan.SequencePlan`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from devices import Shot
from flows._errors import ExpressionError

from ._expressions import calibrated_quantities, compile_expression
from ._plan import SequencePlan, plan_sequence
from ._spec import SequenceSpec
from ._step_kind import ValueOf
from ._steps import Step, step_kind
from ._units import Quantity, si_magnitude

__all__ = [
    "calibrated_references",
    "count_shots",
    "evaluate_globals",
    "iter_plan_shots",
    "iter_shots",
    "parameter_units",
    "plan_globals",
]

logger = logging.getLogger(__name__)


def _evaluate(text: str, path: str, namespace: Mapping[str, Any], calibrated: Mapping[str, Any] | None) -> Any:
    try:
        return compile_expression(text).evaluate(namespace, calibrated)
    except ExpressionError as exc:
        raise exc.at(path) from exc


def plan_globals(plan: SequencePlan, calibrated: Mapping[str, Any] | None) -> dict[str, Any]:
    """The plan's globals as Quantities (or bools); evaluated again only to raise the error of one that fails."""
    if len(plan.global_values) == len(plan.globals):
        return dict(plan.global_values)
    namespace: dict[str, Any] = {}
    for name, text in plan.spec.parameters.items():
        namespace[name] = _evaluate(text, f"parameters.{name}", namespace, calibrated)
    return namespace


def evaluate_globals(spec: SequenceSpec, calibrated: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The global parameters as pint Quantities (or bools), in definition order.

    Raises :class:`ExpressionError` naming the parameter that cannot be evaluated.
    """
    return plan_globals(plan_sequence(spec, calibrated), calibrated_quantities(calibrated))


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
    def __init__(self, plan: SequencePlan, calibrated: Mapping[str, Any] | None) -> None:
        self.calibrated = calibrated
        self.namespace = _LazyNamespace(plan_globals(plan, calibrated))
        self.parameters: dict[str, float | bool] = {}
        self.indices: dict[str, int] = {}
        self.axis_names = {axis.path: axis.name for axis in plan.axes}
        self.index = 0

    def value_of(self, node_path: str, expressions: Mapping[str, str]) -> ValueOf:
        """Evaluate a step's expressions on demand, in the shot's namespace, errors naming the field."""
        return lambda field: _evaluate(expressions[field], f"{node_path}.{field}", self.namespace, self.calibrated)

    def steps(self, steps: Sequence[Step], path: str) -> Iterator[Shot]:
        for i, step in enumerate(steps):
            node = step_kind(step)
            here = f"{path}[{i}].{node.kind}"
            if node.yields_shot:
                yield Shot(self.index, dict(self.parameters), dict(self.indices))
                self.index += 1
                continue
            value = self.value_of(here, dict(node.expressions()))
            if node.body is None:
                for name, bound in node.bind(value).items():
                    self.namespace[name] = bound
                    self.parameters[name] = si_magnitude(bound)
                continue
            values, unit = node.loop_values(value, here)
            axis = self.axis_names[here]
            for j in node.order(len(values)):  # j: the position in the unshuffled range
                self.indices[axis] = j
                for name in node.variables:
                    self.namespace.set_raw(name, values[j], unit)
                    self.parameters[name] = values[j]
                yield from self.steps(node.body, f"{here}.steps")
            self.indices.pop(axis, None)


def iter_plan_shots(plan: SequencePlan, calibrated: Mapping[str, Any] | None = None) -> Iterator[Shot]:
    """The shots of ``plan``'s spec (see :func:`iter_shots`); ``calibrated`` as Quantities or texts."""
    return _Walk(plan, calibrated_quantities(calibrated)).steps(plan.spec.iteration, "iteration")


def iter_shots(spec: SequenceSpec, calibrated: Mapping[str, Any] | None = None) -> Iterator[Shot]:
    """Yield the spec's shots lazily, in order, with parameters in SI magnitudes.

    Only iteration variables (declares and loop variables) are in a shot's
    parameters, not globals. A shot's ``indices`` are its positions on the enclosing
    loops' axes (named as in the plan's ``axes``), in scan order. Raises :class:`ExpressionError` naming the field
    path when an expression fails for a particular shot (or a global, at once).
    """
    return iter_plan_shots(plan_sequence(spec, calibrated), calibrated)


def count_shots(spec: SequenceSpec, calibrated: Mapping[str, Any] | None = None) -> int | None:
    """The exact number of shots, or ``None`` when a loop's bounds depend on loop variables.

    Computed from the loop bounds without walking the shots (instant for 10^9 shots).
    """
    return plan_sequence(spec, calibrated).shot_count


def parameter_units(spec: SequenceSpec, calibrated: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Each iteration variable -> its SI unit (``"Hz"``, ``"s"``, ``""`` if dimensionless or bool).

    Variables whose unit cannot be known before running (they depend on
    calibration values not given) map to ``""``.
    """
    return plan_sequence(spec, calibrated).parameter_units()


def calibrated_references(spec: SequenceSpec) -> set[str]:
    """The names ``NAME`` of every ``calibrated.NAME`` that an expression of ``spec`` uses."""
    return set(plan_sequence(spec).calibrated_references)
