"""Failures: the one error that started a task group's failure, and its record in the store."""

from __future__ import annotations

from typing import Any, NoReturn

import anyio

__all__ = ["error_record", "first_error", "raise_first"]


def first_error(error: BaseException) -> BaseException:
    """The exception that caused ``error`` (searching exception groups depth-first).

    In a task group, the first failure cancels the siblings; their cancellations
    are skipped so the root cause is returned. A non-group is returned as is.
    """
    if not isinstance(error, BaseExceptionGroup):
        return error
    cancelled = anyio.get_cancelled_exc_class()
    for exc in error.exceptions:
        found = first_error(exc)
        if not isinstance(found, cancelled):
            return found
    return first_error(error.exceptions[0])


def raise_first(group: BaseExceptionGroup[Any]) -> NoReturn:
    """Raise the error that started ``group`` as itself (the group's traceback is dropped).

    Use in ``except BaseExceptionGroup`` around a task group whose callers expect
    the error a child raised, not a group.
    """
    raise first_error(group) from None


def error_record(error: BaseException) -> dict[str, Any]:
    """What the store and the summary keep of ``error``: type, message, and shot, device and cause when known."""
    record: dict[str, Any] = {"type": type(error).__name__, "message": str(error) or repr(error)}
    for attribute, key in (("shot_index", "shot"), ("device", "device")):
        value = getattr(error, attribute, None)
        if value is not None:
            record[key] = value
    cause = error.__cause__
    if cause is not None:
        record["cause"] = f"{type(cause).__name__}: {cause}"
    return record
