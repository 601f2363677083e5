"""The errors of the results store, rooted in :class:`devices.ShotflowError`."""

from __future__ import annotations

from devices import ShotflowError

__all__ = [
    "StoreBackpressure",
    "StoreBusyError",
    "StoreCompactionError",
    "StoreError",
    "StoreExistsError",
    "StoreNotReadyError",
    "StoreQueryError",
    "StoreShapeError",
    "StoreSpecMismatchError",
]


class StoreError(ShotflowError):
    """The results store could not be created, opened, written or read."""


class StoreExistsError(StoreError):
    """A store already exists at the path and ``resume`` was not requested."""


class StoreNotReadyError(StoreError):
    """The store folder exists but its writer has not yet written what a reader needs.

    Its writer is creating it, or was stopped while doing so (``shotflow resume`` or a new
    run at the same path takes it over); a reader waiting for a run's first shots retries.
    """


class StoreQueryError(StoreError):
    """A request names a data variable or parameter the store does not have.

    ``name`` is the unknown name, ``available`` the names the store has for that role.
    """

    def __init__(self, message: str, *, name: str, available: list[str]) -> None:
        super().__init__(message)
        self.name = name
        self.available = available


class StoreBusyError(StoreError):
    """Another writer (process) holds the store open; a store has exactly one writer."""


class StoreShapeError(StoreError):
    """A record's data (or parameter) does not match the shape/dtype the store recorded.

    ``label`` names the data label or parameter.
    """

    def __init__(self, message: str, *, label: str) -> None:
        super().__init__(message)
        self.label = label


class StoreSpecMismatchError(StoreError):
    """Resuming a store with a sequence spec different from the one it was created with."""


class StoreBackpressure(StoreError):
    """``write_nowait`` found the writer's queue full; use ``await write(...)`` to wait."""


class StoreCompactionError(StoreError):
    """A store cannot be compacted (its run is in progress), or a rewritten array did not read
    back equal to the original (the array keeps its old layout)."""
