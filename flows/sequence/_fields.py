"""The field types every part of the spec shares: expressions, variable names, the frozen base model."""

from __future__ import annotations

import keyword
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from ._expressions import CALIBRATED, compile_expression
from ._math import CONSTANTS, FUNCTIONS

__all__ = ["Expr", "FrozenModel", "Identifier"]

_RESERVED = frozenset({CALIBRATED, *FUNCTIONS, *CONSTANTS})


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


def _check_variable(name: str) -> str:
    if keyword.iskeyword(name) or name in _RESERVED:
        raise ValueError(f"{name!r} is reserved and cannot be a variable name")
    return name


Identifier = Annotated[
    str,
    Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64, description="A variable name."),
    AfterValidator(_check_variable),
]


class FrozenModel(BaseModel):
    """Base of the spec's models: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
