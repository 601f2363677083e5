"""The results store: one zarr group per sequence, written shot by shot, read with xarray."""

from ._compact import CompactionReport, CompactionStep, compact_store, count_files
from ._errors import (
    StoreBackpressure,
    StoreBusyError,
    StoreCompactionError,
    StoreError,
    StoreExistsError,
    StoreNotReadyError,
    StoreQueryError,
    StoreShapeError,
    StoreSpecMismatchError,
)
from ._layout import INDEX_PREFIX
from ._quantity_text import compact_unit, format_quantity
from ._reader import load_values, open_sequence, read_store_spec, store_state
from ._show import describe_store, draw_store, plot_store
from ._writer import ShotStoreWriter

__all__ = [
    "CompactionReport",
    "CompactionStep",
    "INDEX_PREFIX",
    "ShotStoreWriter",
    "StoreBackpressure",
    "StoreBusyError",
    "StoreCompactionError",
    "StoreError",
    "StoreExistsError",
    "StoreNotReadyError",
    "StoreQueryError",
    "StoreShapeError",
    "StoreSpecMismatchError",
    "compact_store",
    "count_files",
    "compact_unit",
    "describe_store",
    "draw_store",
    "format_quantity",
    "load_values",
    "open_sequence",
    "plot_store",
    "read_store_spec",
    "store_state",
]
