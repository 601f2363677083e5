"""``shotflow plan``: the shots of a spec as a table or as JSON lines, streamed."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from typing import Any

from flows._errors import SpecError

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
            yield _json_line(shot.index, dict(shot.parameters))
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


def _json_line(index: int, parameters: dict[str, Any]) -> str:
    """Strict JSON (never ``NaN``/``Infinity``); raises SpecError naming a parameter that is not finite."""
    try:
        return json.dumps({"index": index, "parameters": parameters}, allow_nan=False)
    except ValueError as exc:
        name = next((n for n, v in parameters.items() if isinstance(v, float) and not math.isfinite(v)), "?")
        raise SpecError(f"shot {index}: parameter {name!r} = {parameters.get(name)!r} is not a finite number") from exc


def _row(cells: list[str]) -> str:
    return "  ".join(c.rjust(_COLUMN) if i else c.rjust(8) for i, c in enumerate(cells)).rstrip()
