"""Exception groups from task groups: find the error that started the failure."""

from __future__ import annotations

import anyio

__all__ = ["first_error"]


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
