"""The expressions inside a device configuration: fields marked with :class:`devices.ExpressionSpec`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from devices import ExpressionSpec

__all__ = ["expression_fields"]


def _expression_specs(annotation: Any, metadata: Sequence[Any] = ()) -> list[ExpressionSpec]:
    """ExpressionSpec markers on a field: its metadata, ``Annotated[...]`` or an optional ``X | None``."""
    found = [m for m in metadata if isinstance(m, ExpressionSpec)]
    found += [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, ExpressionSpec)]
    if not found and get_origin(annotation) in (Union, UnionType):
        for arg in get_args(annotation):
            found += _expression_specs(arg)
    return found


def expression_fields(model: BaseModel, path: str) -> Iterator[tuple[str, str, ExpressionSpec]]:
    """Every expression in a device configuration: (field path, text, spec), nested models included."""
    for field_name, info in type(model).model_fields.items():
        value = getattr(model, field_name)
        here = f"{path}.{field_name}"
        specs = _expression_specs(info.annotation, info.metadata)
        if specs and isinstance(value, str):
            yield here, value, specs[0]
        elif isinstance(value, BaseModel):
            yield from expression_fields(value, here)
        elif isinstance(value, (list, tuple, dict)):
            container = next(
                (a for a in (info.annotation, *get_args(info.annotation)) if get_origin(a) in (list, tuple, dict)), None
            )
            inner = [s for arg in get_args(container) for s in _expression_specs(arg)] if container else []
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                item_path = f"{here}.{key}" if isinstance(value, dict) else f"{here}[{key}]"
                if inner and isinstance(item, str):
                    yield item_path, item, inner[0]
                elif isinstance(item, BaseModel):
                    yield from expression_fields(item, item_path)
