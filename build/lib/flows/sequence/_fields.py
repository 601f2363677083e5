"""The field types every part of the spec shares: expressions, names, the frozen base model.

**The name rule.** Every name declared in a spec reaches a path somewhere: device names
become zarr array names (``<device>.<label>``), Prefect limit names
(``shotflow-device-<device>``) and journal entries; picture and data labels become zarr
arrays and dimension names (``<device>.<label>.y``); variables become zarr arrays and
xarray coordinates; the sequence name becomes a folder. So a name (:data:`Name`: devices,
timeline lanes and steps, pictures, data labels) is ASCII letters, digits, ``_`` and
``-``, starts with a letter and has at most :data:`MAX_NAME_LENGTH` characters — no dot
(``<device>.<label>`` stays unambiguous), no path separator, nothing Prefect or a file
system refuses. A variable (:data:`Identifier`) is a name an expression can read: no
``-``, not a keyword, function, constant or store bookkeeping name nor ``index``, the
prefix of the store's loop indices ``index.<axis>``; and the analysis
refuses a variable named like a unit that the spec also writes as a unit, ``us`` beside
``20 us``). A sequence name
(:data:`SequenceName`) may also hold spaces and dots, never ``..``, a separator or a
control character. The devices' run-time check of data labels (``ShotContext.signal_data``)
uses the same pattern (a test keeps them equal).
"""

from __future__ import annotations

import keyword
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, GetJsonSchemaHandler, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from ._expressions import CALIBRATED, compile_expression
from ._math import CONSTANTS, FUNCTIONS

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_SEQUENCE_NAME_LENGTH",
    "NAME_PATTERN",
    "STORE_NAMES",
    "DURATION_PATTERN",
    "DURATION_UNITS",
    "Expr",
    "INDEX_PREFIX",
    "FrozenModel",
    "Identifier",
    "NAME_KEYS",
    "Name",
    "SequenceName",
    "check_name",
]

MAX_NAME_LENGTH = 64
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]*"
"""Devices, lanes, timeline steps, pictures and data labels (see the module docstring)."""
_NAME = re.compile(NAME_PATTERN)
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_NAME_HELP = f"letters, digits, '_' and '-', starting with a letter, at most {MAX_NAME_LENGTH} characters"

STORE_NAMES = frozenset({"shot", "status", "start_time", "end_time", "attempts"})
"""The results store's bookkeeping arrays (``tasks.store`` layout; a test keeps them equal)."""
INDEX_PREFIX = "index"
"""The store's per-shot loop indices are ``index.<axis>`` (``index.detuning``, ``index.repeat``): no
variable can hold a dot, and neither a variable nor a device may be named ``index`` (a device's data
``index.<label>`` would take the same array names)."""

MAX_SEQUENCE_NAME_LENGTH = 100
_SEQUENCE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 _.-]*[A-Za-z0-9_-])?")
_SEQUENCE_NAME_HELP = (
    "letters, digits, spaces, '_', '-' and '.', starting with a letter or digit, not ending with "
    f"a space or a dot, no '..', at most {MAX_SEQUENCE_NAME_LENGTH} characters"
)

_RESERVED = frozenset({CALIBRATED, *FUNCTIONS, *CONSTANTS})


def _shown(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")


def check_name(name: str) -> str:
    """``name`` if it follows the name rule; raises ValueError saying why not."""
    if not isinstance(name, str):
        raise ValueError(f"a name is a string, got {type(name).__name__}")
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise ValueError(f"{_shown(name)} is not a valid name ({_NAME_HELP})")
    return name


Name = Annotated[
    str,
    AfterValidator(check_name),
    WithJsonSchema({"type": "string", "pattern": f"^{NAME_PATTERN}$", "maxLength": MAX_NAME_LENGTH}),
]
"""A device, lane, timeline step, picture or data label name (see the module docstring)."""


class _NameKeys:
    """JSON schema of a name-keyed mapping: ``additionalProperties`` and ``propertyNames`` (no patternProperties)."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        patterns = target.pop("patternProperties", None)
        if patterns:
            ((pattern, value),) = patterns.items()
            target["additionalProperties"] = value
            target.setdefault("propertyNames", {})["pattern"] = pattern
        return schema


NAME_KEYS = _NameKeys()
"""Marks ``dict[Name, X]`` fields: ``Annotated[dict[Name, X], NAME_KEYS]``."""


def _check_sequence_name(name: str) -> str:
    if len(name) > MAX_SEQUENCE_NAME_LENGTH or not _SEQUENCE_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{_shown(name)} is not a valid sequence name ({_SEQUENCE_NAME_HELP})")
    return name


SequenceName = Annotated[
    str,
    AfterValidator(_check_sequence_name),
    WithJsonSchema({"type": "string", "pattern": f"^{_SEQUENCE_NAME.pattern}$", "maxLength": MAX_SEQUENCE_NAME_LENGTH}),
]
"""The sequence's name: a folder of the results (see the module docstring)."""


def _coerce_expression(value: Any) -> Any:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return repr(value)
    return value


def _parse_expression(text: str) -> str:
    compile_expression(text)  # raises ExpressionError (a ValueError): pydantic adds the field path
    return text


Expr = Annotated[
    str,
    BeforeValidator(_coerce_expression),
    AfterValidator(_parse_expression),
    Field(description="An expression with units, e.g. '2 * detuning + 5 MHz'."),
]


DURATION_UNITS = (
    *("s", "ms", "us", "µs", "μs", "ns", "min", "h"),
    *("second", "seconds", "millisecond", "milliseconds", "microsecond", "microseconds"),
    *("nanosecond", "nanoseconds", "minute", "minutes", "hour", "hours"),
)
"""The time units a plain duration is written in (each one pint's, a test keeps them so)."""
DURATION_PATTERN = (
    r"^ *\+?(?=[0-9.]*[1-9])(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,2})? *"
    rf"(?:{'|'.join(sorted(DURATION_UNITS, key=len, reverse=True))}) *$"
)
"""A positive number and a time unit (``10 s``, ``1.5 ms``): the JSON-schema pattern of a duration field,
so that the Prefect server refuses ``10 kg`` when the run is submitted (plain spaces only: ``\\s``
would admit Unicode spaces the expression parser refuses). The spec's own validator
accepts every text it matches (and any expression of that dimension besides)."""


def _check_variable(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{_shown(name)} is not a valid variable name (letters, digits and '_', starting with a letter, "
            f"at most {MAX_NAME_LENGTH} characters)"
        )
    if keyword.iskeyword(name) or name in _RESERVED:
        raise ValueError(f"{name!r} is reserved and cannot be a variable name")
    if name in STORE_NAMES:
        raise ValueError(f"{name!r} is a bookkeeping name of the results store and cannot be a variable name")
    if name == INDEX_PREFIX:
        raise ValueError(f"{name!r} names the store's loop indices (index.<axis>) and cannot be a variable name")
    return name


Identifier = Annotated[
    str,
    AfterValidator(_check_variable),
    WithJsonSchema(
        {"type": "string", "pattern": f"^{_IDENTIFIER.pattern}$", "maxLength": MAX_NAME_LENGTH},
    ),
    Field(description="A variable name."),
]


class FrozenModel(BaseModel):
    """Base of the spec's models: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
