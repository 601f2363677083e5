"""``shotflow plan``: the shots of a spec as a table or as JSON lines, streamed."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from ._iteration import iter_plan_shots
from ._plan import plan_sequence
from ._spec import SequenceSpec
from ._units import Quantity

__all__ = ["format_value", "plan_lines"]

logger = logging.getLogger(__name__)

_COLUMN = 14


def format_value(value: float | bool, unit: str) -> str:
    """A readable value with a prefixed unit: ``200000.0, "Hz"`` -> ``"200 kHz"``."""
    if isinstance(value, bool):
        return str(value)
    if not unit:
        return f"{value:.6g}"
    quantity = Quantity(value, unit)
    if value != 0:
        quantity = quantity.to_compact()
    return f"{quantity:~.6g}"


def plan_lines(spec: SequenceSpec, as_json: bool = False) -> Iterator[str]:
    """The spec's shots, one line each, lazily (a 10^9-shot scan streams its first lines at once).

    ``as_json``: ``{"index": i, "parameters": {...}}`` per line, SI floats and
    JSON booleans. Otherwise a header, a table row per shot with units and a
    total line. Raises :class:`ExpressionError` naming the field when a shot fails.
    """
    plan = plan_sequence(spec)
    if as_json:
        for shot in iter_plan_shots(plan):
            yield json.dumps({"index": shot.index, "parameters": dict(shot.parameters)})
        return
    units = plan.parameter_units()
    names = list(units)
    expected = plan.shot_count
    total = "unknown number of" if expected is None else f"{expected}"
    yield f"sequence {spec.name}: {total} shots"
    yield _row(["shot", *(f"{n} ({units[n]})" if units[n] else n for n in names)])
    count = 0
    for shot in iter_plan_shots(plan):
        count += 1
        cells: list[Any] = [str(shot.index)]
        cells += [format_value(shot.parameters[n], units[n]) if n in shot.parameters else "-" for n in names]
        yield _row(cells)
    yield f"total: {count} shots"


def _row(cells: list[str]) -> str:
    return "  ".join(c.rjust(_COLUMN) if i else c.rjust(8) for i, c in enumerate(cells)).rstrip()
