"""The plan of a sequence: its spec analysed once, frozen, read by everything downstream.

:func:`plan_sequence` returns a :class:`SequencePlan`, built by one walk of the
step tree (:mod:`._analysis`) and cached on the spec instance per calibration
values. Validation, shot counts, units, calibration references, the shot
iteration, the ``plan`` text and :class:`~flows.sequence.SequenceRuntime` (in
compile workers too: the plan is pickled with it) read this plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._spec import SequenceSpec

__all__ = ["Axis", "SequencePlan", "plan_sequence"]


@dataclass(frozen=True)
class Axis:
    """One loop of the iteration, as a dimension of the scan.

    ``name`` is the loop variable, or ``repeat`` (``repeat_2``, ``repeat_3``...
    for further repeats) for a repeat loop, which sets no variable; ``depth``
    is 0 for the outermost loops; ``size`` the number of values when known
    without running (``None`` when it depends on an enclosing loop or on
    calibration values not given); ``unit`` the SI unit of the values (``""``
    when dimensionless, boolean, unknown or a repeat); ``parent`` the index in
    :attr:`SequencePlan.axes` of the enclosing loop.
    """

    name: str
    variables: tuple[str, ...]
    kind: str
    depth: int
    size: int | None
    unit: str
    shuffled: bool
    seed: int | None
    path: str
    description: str
    parent: int | None

    def record(self) -> dict[str, Any]:
        """The axis as JSON-safe values (str, int, bool, None and lists)."""
        return {
            "name": self.name,
            "variables": list(self.variables),
            "kind": self.kind,
            "depth": self.depth,
            "size": self.size,
            "unit": self.unit,
            "shuffled": self.shuffled,
            "seed": self.seed,
            "path": self.path,
            "description": self.description,
            "parent": self.parent,
        }


@dataclass(frozen=True, eq=False)
class SequencePlan:
    """A spec analysed once: everything known about a sequence before running it (picklable; do not mutate).

    ``calibrated`` holds the calibration values the analysis used (only those
    the spec references; ``None`` when none were given). ``globals`` and
    ``variables`` are the global parameters and the iteration variables
    (declared or looped) in definition order; ``units`` maps each of them to
    its SI unit (``""`` if dimensionless, boolean or unknown before running);
    ``global_values`` holds the globals that could be evaluated (Quantities or
    bools). ``shot_count`` is ``None`` when a loop's size depends on another
    loop (or on calibration values not given). ``axes`` are the loops outer
    to inner (depth-first, in spec order). ``problems`` are the spec's
    problems as ``field.path: problem`` lines, computed without calibration
    values for validation.
    """

    spec: SequenceSpec
    calibrated: Mapping[str, Any] | None
    globals: tuple[str, ...]
    variables: tuple[str, ...]
    units: Mapping[str, str]
    global_values: Mapping[str, Any]
    calibrated_references: frozenset[str]
    shot_count: int | None
    axes: tuple[Axis, ...]
    problems: tuple[str, ...]

    @property
    def namespace(self) -> tuple[str, ...]:
        """Every name an expression may read, in order: globals, then iteration variables."""
        return self.globals + self.variables

    def parameter_units(self) -> dict[str, str]:
        """Each iteration variable -> its SI unit (see :func:`flows.sequence.parameter_units`)."""
        return {name: self.units[name] for name in self.variables}

    def axes_record(self) -> list[dict[str, Any]]:
        """The axes outer to inner as JSON-safe dicts (see :meth:`Axis.record`), for the store."""
        return [axis.record() for axis in self.axes]


def plan_sequence(spec: SequenceSpec, calibrated: Mapping[str, Any] | None = None) -> SequencePlan:
    """The plan of ``spec`` with calibration values ``calibrated`` (``NAME`` -> value or expression text).

    Analysed once per spec instance: later calls with equal values of the
    calibrations the spec references return the same plan (validating the spec
    made the uncalibrated one). Never raises for a valid spec: problems are in
    :attr:`SequencePlan.problems`.
    """
    return spec.plan(calibrated)
