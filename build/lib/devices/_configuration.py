"""Device configuration: the user-facing settings of one instrument."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict

__all__ = ["DeviceConfiguration", "Expression", "ExpressionSpec", "expression"]


@dataclass(frozen=True)
class ExpressionSpec:
    """Marks a string field as a shotflow expression.

    ``unit`` is the dimension the expression must have (a pint unit string such
    as ``"Hz"`` or ``"s"``); ``None`` accepts any dimension. The sequence layer
    parses and dimension-checks every marked field before any device is touched.
    """

    unit: str | None = None


Expression = Annotated[str, ExpressionSpec()]
"""A string evaluated per shot, e.g. ``"detuning + 80 MHz"`` (any dimension)."""


def expression(unit: str | None) -> object:
    """Return an ``Annotated[str, ...]`` type for an expression of dimension ``unit``."""
    return Annotated[str, ExpressionSpec(unit)]


class DeviceConfiguration(BaseModel):
    """Base class of every instrument's settings (a pydantic model).

    Subclasses declare ``type: Literal["vendor.model"] = "vendor.model"``; the
    registry uses it to pick the configuration class. Unknown fields are rejected.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
