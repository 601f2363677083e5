"""The interface every kind of step implements (:class:`StepKind`), and helpers for loop kinds.

The analysis, the shot iteration and the plan text know steps only through
:class:`StepKind`; the steps themselves are in :mod:`._steps`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from flows._errors import ExpressionError

from ._shuffle import Permutation
from ._units import show_value

if TYPE_CHECKING:
    from ._steps import Step

__all__ = [
    "MAX_SHOTS",
    "SHOT",
    "Linear",
    "LoopKind",
    "Sample",
    "StepKind",
    "ValueOf",
    "is_quantity",
    "same_dimension",
    "si_base",
]

MAX_SHOTS = 2**53
"""Most values of one loop and most shots of a sequence (shot indices stay exact as floats)."""

ValueOf = Callable[[str], Any]
"""The value of one of a step's expressions, by field name (``"start"``, ``"values[2]"``)."""


@dataclass(frozen=True)
class Sample:
    """What the analysis knows of a value before running: a sample and how far it can be trusted.

    ``value`` is a Quantity or bool (``None`` when unknown: it depends on
    calibration values not given, or failed); ``varying`` is whether it
    depends on a loop variable; ``static`` whether ``value`` is the exact
    value at every shot that reaches this point (so loop sizes can use it).
    """

    value: Any
    varying: bool = False
    static: bool = False


class StepKind:
    """What every step tells the analysis, the iteration and the plan text (see the module docstring)."""

    kind: ClassVar[str]
    yields_shot: ClassVar[bool] = False

    @property
    def variables(self) -> tuple[str, ...]:
        """The variables this step sets itself (not those of its body)."""
        return ()

    @property
    def body(self) -> Sequence[Step] | None:
        """The steps run for every value of a loop; ``None`` when the step is not a loop."""
        return None

    @property
    def shuffled(self) -> bool:
        """Whether a loop runs its values in a random order."""
        return False

    @property
    def shuffle_seed(self) -> int | None:
        """The seed of a shuffled loop's order (``None``: a fresh order every run)."""
        return None

    def expressions(self) -> list[tuple[str, str]]:
        """The step's expressions as ``(field, text)``, in evaluation order; a variable's sample is the first's."""
        return []

    def bind(self, value: ValueOf) -> dict[str, Any]:
        """The values a step that is not a loop gives its variables."""
        return {}

    def problems(self, samples: Mapping[str, Sample]) -> list[tuple[str, str]]:
        """Problems found from the samples of the expressions, as ``(field or "", message)``."""
        return []

    def loop_values(self, value: ValueOf, path: str) -> tuple[Sequence[Any], Any]:
        """A loop's values (SI magnitudes or bools, possibly lazy) and their SI unit; raises ExpressionError."""
        raise TypeError(f"{self.kind} is not a loop")

    def order(self, size: int) -> Sequence[int]:
        """The order in which a loop of ``size`` values runs them: computed lazily (see :mod:`._shuffle`)."""
        if not self.shuffled:
            return range(size)
        return Permutation(size, self.shuffle_seed)

    def describe(self) -> str:
        """One line for people: ``linspace d: 7 values from -2 MHz to 2 MHz``."""
        return self.kind


class _Shot(StepKind):
    kind = "shot"
    yields_shot = True


SHOT = _Shot()


class LoopKind(StepKind):
    """A loop over the values of one variable; its expressions must share one dimension."""

    # subclasses define the fields ``variable``, ``steps``, ``shuffle`` and ``seed``

    @property
    def variables(self) -> tuple[str, ...]:  # noqa: D102
        return (self.variable,)

    @property
    def body(self) -> Sequence[Step]:  # noqa: D102
        return self.steps

    @property
    def shuffled(self) -> bool:  # noqa: D102
        return self.shuffle

    @property
    def shuffle_seed(self) -> int | None:  # noqa: D102
        return self.seed

    def problems(self, samples: Mapping[str, Sample]) -> list[tuple[str, str]]:  # noqa: D102
        known = [(n, s.value) for n, s in samples.items() if is_quantity(s.value)]
        for name, value in known[1:]:
            if value.dimensionality != known[0][1].dimensionality:
                first = f"{known[0][0]} ({show_value(known[0][1])})"
                return [("", f"{first} and {name} ({show_value(value)}) have different dimensions")]
        return []

    def _suffix(self) -> str:
        return ", shuffled" if self.shuffle else ""


def is_quantity(value: Any) -> bool:
    """Whether a sample is a known Quantity (not unknown, not a bool)."""
    return value is not None and not isinstance(value, bool)


def si_base(value: Any) -> tuple[float, Any]:
    """(SI magnitude, SI unit) of a Quantity."""
    base = value.to_base_units()
    return float(base.magnitude), base.units


def same_dimension(value: Any, reference: Any, path: str, text: str) -> Any:
    """``value`` if it has the dimension of ``reference``; raises ExpressionError naming ``path``."""
    if isinstance(value, bool) or isinstance(reference, bool) or value.dimensionality != reference.dimensionality:
        raise ExpressionError(text, f"expected the dimension of the start value ({reference:~}), got {value}", path)
    return value


class Linear(Sequence[float]):
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
        if i == 0:
            return self.start
        value = self.start + i * self.step
        if not math.isfinite(value):  # i * step overflows although the value does not (near the float limits)
            value = 2 * (self.start / 2 + i * (self.step / 2))
        return value
