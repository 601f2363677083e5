"""The results store: one zarr group per sequence, written shot by shot, read with xarray."""

from ._errors import (
    StoreBackpressure,
    StoreBusyError,
    StoreError,
    StoreExistsError,
    StoreQueryError,
    StoreShapeError,
    StoreSpecMismatchError,
)
from ._layout import INDEX_PREFIX
from ._quantity_text import format_quantity
from ._reader import load_values, open_sequence, read_store_spec, store_state
from ._show import describe_store, plot_store
from ._writer import ShotStoreWriter

__all__ = [
    "INDEX_PREFIX",
    "ShotStoreWriter",
    "StoreBackpressure",
    "StoreBusyError",
    "StoreError",
    "StoreExistsError",
    "StoreQueryError",
    "StoreShapeError",
    "StoreSpecMismatchError",
    "describe_store",
    "format_quantity",
    "load_values",
    "open_sequence",
    "plot_store",
    "read_store_spec",
    "store_state",
]
