"""Reading a results store: its state, its spec, and its shots as an xarray Dataset."""

from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ._errors import StoreError
from ._records import SequenceState, ShotStatus
from ._store_layout import read_root_attrs, writer_lock_is_free

__all__ = ["open_sequence", "read_store_spec", "store_state"]

OPEN_RETRIES = 4
"""A live store can be caught mid-resize (arrays of different lengths); retry that many times."""
RETRY_DELAY_S = 0.05


def read_store_spec(path: str | Path) -> str:
    """The sequence spec (JSON text) the store was created with. Raises StoreError."""
    spec = read_root_attrs(Path(path)).get("spec")
    if not isinstance(spec, str):
        raise StoreError(f"store {path} has no sequence spec recorded")
    return spec


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def store_state(path: str | Path) -> dict[str, Any]:
    """The store's group attributes, with ``state`` reported as ``crashed`` when the store
    says ``running`` but no writer holds it (the writer process died), plus ``writer_alive``.

    Raises StoreError if ``path`` is not a shotflow store.
    """
    path = Path(path)
    attrs = dict(read_root_attrs(path))
    attrs.pop("coordinates", None)
    if attrs.get("state") == SequenceState.RUNNING:
        lock_free = writer_lock_is_free(path)
        same_host = attrs.get("writer_host") == socket.gethostname()
        pid = attrs.get("writer_pid")
        dead = same_host and isinstance(pid, int) and not _pid_alive(pid)
        attrs["writer_alive"] = not (lock_free or dead)
        if not attrs["writer_alive"]:
            attrs["state"] = str(SequenceState.CRASHED)
    else:
        attrs["writer_alive"] = False
    return attrs


def open_sequence(path: str | Path, *, completed_only: bool = True) -> xr.Dataset:
    """Open the store as a lazily loaded Dataset over ``shot`` (parameters are coordinates).

    Works while the store is being written (reads the live, non-consolidated metadata) and
    after a crash. With ``completed_only`` (default) only shots whose status is completed are
    returned. Raises StoreError if ``path`` is not a readable store.
    """
    path = Path(path)
    attrs = read_root_attrs(path)
    consolidated = attrs.get("state") != SequenceState.RUNNING
    for attempt in range(OPEN_RETRIES):
        try:
            with warnings.catch_warnings():
                # leftover temp files of a killed writer are "not recognized" by zarr
                warnings.filterwarnings("ignore", message=".*not recognized as a component.*")
                ds = xr.open_zarr(path, consolidated=consolidated, zarr_format=3)
            break
        except (KeyError, ValueError, FileNotFoundError) as exc:
            if consolidated:
                consolidated = False  # resumed since it was consolidated: read live metadata
                continue
            if "conflicting sizes" not in str(exc) or attempt == OPEN_RETRIES - 1:
                raise StoreError(f"cannot open store {path}: {exc}") from exc
            time.sleep(RETRY_DELAY_S)
    else:
        raise StoreError(f"cannot open store {path}: its arrays keep changing length")
    if completed_only:
        completed = np.flatnonzero(ds["status"].values == ShotStatus.COMPLETED)
        ds = ds.isel(shot=completed)
    return ds
