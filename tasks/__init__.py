"""Per-shot work: the results store (writer and reader); the engine's tasks join here."""

from ._errors import (
    StoreBackpressure,
    StoreBusyError,
    StoreError,
    StoreExistsError,
    StoreShapeError,
    StoreSpecMismatchError,
)
from ._records import SequenceState, ShotRecord, ShotStatus
from ._store_reader import open_sequence, read_store_spec, store_state
from ._store_show import describe_store, plot_store
from ._store_writer import ShotStoreWriter

__all__ = [
    # records
    "SequenceState",
    "ShotRecord",
    "ShotStatus",
    # results store
    "ShotStoreWriter",
    "describe_store",
    "open_sequence",
    "plot_store",
    "read_store_spec",
    "store_state",
    # errors
    "StoreBackpressure",
    "StoreBusyError",
    "StoreError",
    "StoreExistsError",
    "StoreShapeError",
    "StoreSpecMismatchError",
]
