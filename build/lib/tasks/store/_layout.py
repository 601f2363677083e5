"""The on-disk layout of a results store: its names, constants and housekeeping.

A store is one zarr v3 group (a folder ending in ``.zarr``) with dimension ``shot``:

- ``shot`` (int64) the shot index, a dimension coordinate;
- one float64 (or bool) array per scan parameter, listed in the group attribute
  ``coordinates`` so xarray makes them coordinates, with a ``units`` attribute;
- one int64 array ``index.<axis>`` per loop axis: the shot's position on it, in scan
  order (also listed in ``coordinates``);
- ``status`` (uint8, CF flags), ``start_time``/``end_time`` (float64 unix seconds,
  CF time units so xarray decodes datetime64), ``attempts`` (int32);
- one array per data label ``<device>.<label>`` with dims ``(shot, <declared dims>)``, e.g.
  ``(shot, y, x)`` (one chunk per shot, blosc lz4 + bitshuffle), or ``(shot,)`` for scalar
  data, with ``units`` and ``long_name`` as its device declared them (see ``_variables``);
  an undeclared label gets dims ``(shot, <label>.y, <label>.x)``;
- one 1-D array per declared coordinate of a data dimension (``x``, ``y``, ``time``), named
  after its dimension, with ``units`` and ``long_name``.

The group attributes hold ``Conventions`` (CF), the spec, the ``data_layout``, the ``state``
and its ``history`` (see ``_states``), the optional ``axes`` of the scan, the error and the
writer. Every attribute, of the group and of each array, is netCDF-safe (see ``_attrs``).
The writer lock lives in ``status/`` (see ``_lock``).
:class:`~tasks.store._arrays.StoreArrays` writes this layout.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from tasks.records import ShotStatus

from ._errors import StoreError, StoreNotReadyError

__all__ = [
    "ATTEMPTS",
    "END_TIME",
    "FORMAT_VERSION",
    "GROW_BLOCK",
    "INDEX_PREFIX",
    "RESERVED_NAMES",
    "SERIES_CHUNK",
    "SHOT",
    "START_TIME",
    "STATUS",
    "STATUS_ATTRS",
    "TIME_ATTRS",
    "data_dims",
    "fill_value",
    "read_root_attrs",
    "remove_partial_files",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = "shotflow-store/2"
"""2: every attribute netCDF-safe (structures as JSON text, absent values omitted)."""
SHOT = "shot"
STATUS = "status"
START_TIME = "start_time"
END_TIME = "end_time"
ATTEMPTS = "attempts"
INDEX_PREFIX = "index."
"""Prefix of the per-shot loop index arrays (``flows.sequence`` reserves the name ``index``)."""
RESERVED_NAMES = frozenset({SHOT, STATUS, START_TIME, END_TIME, ATTEMPTS})

GROW_BLOCK = 1024
"""The arrays' initial length and growth unit: they grow in whole blocks as shots arrive (by at
least a quarter each time), whatever the expected count, and are trimmed when the run ends."""
SERIES_CHUNK = 1024
"""Chunk length of the per-shot 1-D arrays (status, parameters, times, scalar data)."""
LOCK_FILE = (STATUS, ".writer.lock")
HOLDER_FILE = (STATUS, ".writer.holder")
"""Where the writer lock (see ``_lock``) and its holder's identity live in a store folder."""
PARTIAL_SUFFIX = ".partial"
"""zarr's LocalStore writes ``<key>.<uuid>.partial`` then renames; a SIGKILL can leave some."""

TIME_ATTRS = {"units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian"}
STATUS_ATTRS = {
    "long_name": "shot status",
    "flag_values": [int(s) for s in ShotStatus],
    "flag_meanings": " ".join(s.name.lower() for s in ShotStatus),
}
_DIM_SUFFIXES = {1: ("sample",), 2: ("y", "x"), 3: ("z", "y", "x")}


def data_dims(label: str, ndim: int) -> list[str]:
    """Dimension names of data variable ``label`` whose per-shot value has ``ndim`` dims."""
    suffixes = _DIM_SUFFIXES.get(ndim, tuple(f"dim_{i}" for i in range(ndim)))
    return [SHOT, *(f"{label}.{s}" for s in suffixes)]


def fill_value(dtype: np.dtype) -> Any:
    """The value an array of ``dtype`` holds for a shot not written yet (NaN, False or 0)."""
    if dtype.kind in "fc":
        return np.nan
    return False if dtype.kind == "b" else 0


# --- housekeeping ------------------------------------------------------------------------


def remove_partial_files(path: Path) -> int:
    """Delete zarr's leftover temporary files (from a killed writer); return how many."""
    removed = 0
    for leftover in path.rglob(f"*{PARTIAL_SUFFIX}"):
        leftover.unlink(missing_ok=True)
        removed += 1
    if removed:
        logger.info("removed %d leftover partial file(s) from %s", removed, path)
    return removed


def read_root_attrs(path: Path) -> dict[str, Any]:
    """The group attributes of the store at ``path`` (read from its ``zarr.json``).

    Raises StoreNotReadyError if ``path`` is a folder without metadata yet (its writer is
    creating the store, or was stopped before writing any), StoreError if it is not a store.
    """
    try:
        meta = json.loads((Path(path) / "zarr.json").read_text())
    except (OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError) and Path(path).joinpath(*LOCK_FILE).exists():
            raise StoreNotReadyError(
                f"store {path} holds no metadata yet: its writer is creating it, or was stopped "
                "before writing any (a new run at this path takes the folder over)"
            ) from exc
        raise StoreError(f"{path} is not a readable zarr store: {exc}") from exc
    attrs = meta.get("attributes", {})
    if meta.get("node_type") != "group" or "format_version" not in attrs:
        raise StoreError(f"{path} is a zarr node but not a shotflow results store")
    return attrs
