"""The iteration's steps: ``declare``, ``linspace``, ``arange``, ``values``, ``repeat`` and ``shot``.

Each kind of step implements :class:`~._step_kind.StepKind`: the variables it sets,
its body (``None`` unless it is a loop), its expressions, the values of its
loop given those expressions, its own checks and a one-line description. The
analysis (:mod:`._analysis`), the shot iteration (:mod:`._iteration`) and the
plan text read steps only through this interface (via :func:`step_kind`).

**Adding a loop kind** happens in this module only: a model subclassing
:class:`~._step_kind.LoopKind` (``kind``, ``expressions``, ``loop_values``, ``describe``;
``problems`` for its own checks), its one-key wrapper model (like
:class:`LinspaceStep`), the wrapper in the :data:`Step` union and in
:data:`STEP_WRAPPERS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import pint
from pydantic import BaseModel, BeforeValidator, Discriminator, Field, Tag
from pydantic_core import PydanticCustomError

from flows._errors import ExpressionError

from ._fields import Expr, FrozenModel, Identifier
from ._step_kind import (
    MAX_SHOTS,
    SHOT,
    Linear,
    LoopKind,
    Sample,
    StepKind,
    ValueOf,
    is_quantity,
    same_dimension,
    si_base,
)
from ._units import show_value, si_magnitude

__all__ = [
    "MAX_NESTING",
    "STEP_KINDS",
    "STEP_WRAPPERS",
    "TAG_PREFIX",
    "Arange",
    "ArangeStep",
    "Declare",
    "DeclareStep",
    "Linspace",
    "LinspaceStep",
    "Repeat",
    "RepeatStep",
    "Step",
    "Values",
    "ValuesStep",
    "assigned_names",
    "step_kind",
]

MAX_NESTING = 32
TAG_PREFIX = "step:"
"""Prefix of the union tags pydantic inserts into error locations (stripped when reporting)."""


class Declare(FrozenModel, StepKind):
    """Set a variable to a value: an expression of the variables set so far."""

    kind: ClassVar[str] = "declare"
    variable: Identifier
    value: Expr

    @property
    def variables(self) -> tuple[str, ...]:  # noqa: D102 - see StepKind
        return (self.variable,)

    def expressions(self) -> list[tuple[str, str]]:  # noqa: D102
        return [("value", self.value)]

    def bind(self, value: ValueOf) -> dict[str, Any]:  # noqa: D102
        return {self.variable: value("value")}

    def describe(self) -> str:  # noqa: D102
        return f"declare {self.variable} = {self.value}"


class Linspace(FrozenModel, LoopKind):
    """A loop over num evenly spaced values from start to stop (both included), like numpy.linspace."""

    kind: ClassVar[str] = "linspace"
    variable: Identifier
    start: Expr
    stop: Expr
    num: int = Field(ge=1, le=MAX_SHOTS, description="Number of values (at most 2**53).")
    steps: list[Step] = Field(description="Steps run for every value of the loop variable.")
    shuffle: bool = Field(False, description="Run the loop's values in a random order.")
    seed: int | None = Field(None, description="Seed of the shuffle, for a reproducible order.")

    def expressions(self) -> list[tuple[str, str]]:  # noqa: D102
        return [("start", self.start), ("stop", self.stop)]

    def loop_values(self, value: ValueOf, path: str) -> tuple[Sequence[Any], Any]:  # noqa: D102
        start, stop = value("start"), value("stop")
        (a, unit), (b, _) = si_base(start), si_base(same_dimension(stop, start, f"{path}.stop", self.stop))
        if self.num == 1:
            return [a], unit
        step = (b - a) / (self.num - 1)
        if not math.isfinite(step):  # b - a overflows (from -1e308 to 1e308): divide first
            step = b / (self.num - 1) - a / (self.num - 1)
        return Linear(a, step, self.num, last=b), unit

    def describe(self) -> str:  # noqa: D102
        return f"linspace {self.variable}: {self.num} values from {self.start} to {self.stop}{self._suffix()}"


class Arange(FrozenModel, LoopKind):
    """A loop over the values from start, in increments of step, up to stop (excluded), like numpy.arange."""

    kind: ClassVar[str] = "arange"
    variable: Identifier
    start: Expr
    stop: Expr
    step: Expr
    steps: list[Step] = Field(description="Steps run for every value of the loop variable.")
    shuffle: bool = Field(False, description="Run the loop's values in a random order.")
    seed: int | None = Field(None, description="Seed of the shuffle, for a reproducible order.")

    def expressions(self) -> list[tuple[str, str]]:  # noqa: D102
        return [("start", self.start), ("stop", self.stop), ("step", self.step)]

    def problems(self, samples: Mapping[str, Sample]) -> list[tuple[str, str]]:  # noqa: D102
        found = super().problems(samples)
        start, stop, step = samples["start"], samples["stop"], samples["step"]
        if step.value is None or isinstance(step.value, bool):
            return found
        step_si = step.value.to_base_units().magnitude
        if step_si == 0:
            return found if step.varying else [*found, ("step", "step must not be zero")]
        if any(s.varying or not is_quantity(s.value) for s in (start, stop)):
            return found
        try:
            a, b = start.value.to_base_units().magnitude, stop.value.to_base_units().magnitude
            count = _arange_count(float(a), float(b), float(step_si))
        except (pint.DimensionalityError, ArithmeticError, ValueError):
            return found
        if count is None:
            return [*found, ("step", _too_many(f"from {start.value:~g} to {stop.value:~g} by {step.value:~g}"))]
        if count <= 0:
            shown = f"from {show_value(start.value)} to {show_value(stop.value)} by {show_value(step.value)}"
            found.append(("", f"the loop yields no value ({shown})"))
        return found

    def loop_values(self, value: ValueOf, path: str) -> tuple[Sequence[Any], Any]:  # noqa: D102
        start = value("start")
        stop = same_dimension(value("stop"), start, f"{path}.stop", self.stop)
        step = same_dimension(value("step"), start, f"{path}.step", self.step)
        (a, unit), (b, _), (d, _) = si_base(start), si_base(stop), si_base(step)
        if d == 0:
            raise ExpressionError(self.step, "step must not be zero", f"{path}.step")
        count = _arange_count(a, b, d)
        if count is None:
            raise ExpressionError(self.step, _too_many(f"from {start:~g} to {stop:~g}"), f"{path}.step")
        return Linear(a, d, count), unit

    def describe(self) -> str:  # noqa: D102
        return f"arange {self.variable}: from {self.start} to {self.stop} by {self.step}{self._suffix()}"


def _arange_count(a: float, b: float, d: float) -> int | None:
    """The number of values from ``a`` by ``d`` below ``b`` (0 if none), or None beyond :data:`MAX_SHOTS`."""
    span = (b - a) / d
    if not math.isfinite(span):  # b - a overflows: divide first
        span = b / d - a / d
    if not math.isfinite(span) or span > MAX_SHOTS:
        return None
    return max(0, math.ceil(span))


def _too_many(what: str) -> str:
    return f"the loop makes more than {MAX_SHOTS} (2**53) values ({what})"


class Values(FrozenModel, LoopKind):
    """A loop over an explicit list of values."""

    kind: ClassVar[str] = "values"
    variable: Identifier
    values: list[Expr] = Field(min_length=1, description="The values, in order, each an expression.")
    steps: list[Step] = Field(description="Steps run for every value of the loop variable.")
    shuffle: bool = Field(False, description="Run the loop's values in a random order.")
    seed: int | None = Field(None, description="Seed of the shuffle, for a reproducible order.")

    def expressions(self) -> list[tuple[str, str]]:  # noqa: D102
        return [(f"values[{j}]", text) for j, text in enumerate(self.values)]

    def loop_values(self, value: ValueOf, path: str) -> tuple[Sequence[Any], Any]:  # noqa: D102
        values = [value(f"values[{j}]") for j in range(len(self.values))]
        unit = None if isinstance(values[0], bool) else si_base(values[0])[1]
        return [si_magnitude(v) for v in values], unit

    def describe(self) -> str:  # noqa: D102
        shown = ", ".join(self.values[:5]) + (", ..." if len(self.values) > 5 else "")
        return f"values {self.variable}: {len(self.values)} values [{shown}]{self._suffix()}"


class Repeat(FrozenModel, StepKind):
    """Run the steps count times."""

    kind: ClassVar[str] = "repeat"
    count: int = Field(ge=1, le=MAX_SHOTS, description="Number of repetitions (at most 2**53).")
    steps: list[Step] = Field(description="Steps run on every repetition.")

    @property
    def body(self) -> Sequence[Step]:  # noqa: D102
        return self.steps

    def loop_values(self, value: ValueOf, path: str) -> tuple[Sequence[Any], Any]:  # noqa: D102
        return range(self.count), None

    def describe(self) -> str:  # noqa: D102
        return f"repeat {self.count} times"


# --- the one-key wrappers of the YAML/JSON form (``{linspace: {...}}``) and the Step union ---------


class _Wrapper(FrozenModel):
    kind: ClassVar[str]

    @property
    def node(self) -> StepKind:
        """The step itself."""
        return getattr(self, self.kind)


class DeclareStep(_Wrapper):  # noqa: D101
    kind: ClassVar[str] = "declare"
    declare: Declare = Field(description="Set a variable.")


class LinspaceStep(_Wrapper):  # noqa: D101
    kind: ClassVar[str] = "linspace"
    linspace: Linspace = Field(description="Loop over evenly spaced values.")


class ArangeStep(_Wrapper):  # noqa: D101
    kind: ClassVar[str] = "arange"
    arange: Arange = Field(description="Loop over values in fixed increments.")


class ValuesStep(_Wrapper):  # noqa: D101
    kind: ClassVar[str] = "values"
    values: Values = Field(description="Loop over listed values.")


class RepeatStep(_Wrapper):  # noqa: D101
    kind: ClassVar[str] = "repeat"
    repeat: Repeat = Field(description="Repeat steps.")


STEP_WRAPPERS: tuple[type[_Wrapper], ...] = (DeclareStep, LinspaceStep, ArangeStep, ValuesStep, RepeatStep)
STEP_KINDS = (*(w.kind for w in STEP_WRAPPERS), SHOT.kind)


def _step_kind_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return TAG_PREFIX + value if value == SHOT.kind else None
    if isinstance(value, dict) and len(value) == 1:
        (key,) = value
        return TAG_PREFIX + key if key in STEP_KINDS and key != SHOT.kind else None
    if isinstance(value, BaseModel):
        (key,) = type(value).model_fields
        return TAG_PREFIX + key
    return None


def _check_step_kind(value: Any) -> Any:
    if _step_kind_tag(value) is None:
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
    Discriminator(_step_kind_tag),
    BeforeValidator(_check_step_kind),
]


def step_kind(step: Step) -> StepKind:
    """The :class:`StepKind` of a step as it appears in a spec (``"shot"`` or a one-key wrapper)."""
    return SHOT if isinstance(step, str) else step.node


def assigned_names(steps: Sequence[Step]) -> set[str]:
    """Every variable the steps set, in loop bodies included."""
    names: set[str] = set()
    for step in steps:
        node = step_kind(step)
        names.update(node.variables)
        if node.body is not None:
            names |= assigned_names(node.body)
    return names


for _model in (Linspace, Arange, Values, Repeat, *STEP_WRAPPERS):
    _model.model_rebuild()
