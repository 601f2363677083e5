"""Reading a results store: its state, its spec, and its shots as an xarray Dataset."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.buffer import Buffer, BufferPrototype
from zarr.abc.store import ByteRequest
from zarr.storage import LocalStore, WrapperStore

from tasks.records import SequenceState, ShotStatus

from ._attrs import decode_attrs
from ._errors import StoreError, StoreNotReadyError
from ._grid import grid_dataset
from ._layout import SHOT as SHOT_DIM
from ._layout import STATUS, read_root_attrs
from ._lock import WriterIdentity, read_holder, writer_lock_is_free
from ._states import in_progress

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["load_values", "open_sequence", "read_store_spec", "store_state"]

OPEN_RETRIES = 4
"""A live store can be caught mid-resize (arrays of different lengths); retry that many times."""
RETRY_DELAY_S = 0.05


class _CommonLengthStore(WrapperStore[LocalStore]):
    """Read-only view of a store whose arrays have different shot lengths (its writer was killed
    while resizing them): every array is presented with the longest length. Shots beyond an
    array's own length read as pending (status) or fill values."""

    def __init__(self, store: LocalStore, length: int) -> None:
        super().__init__(store)
        self._length = length

    @classmethod
    def over(cls, path: Path) -> _CommonLengthStore:
        lengths = [
            json.loads(meta.read_text())["shape"][0]
            for meta in path.glob("*/zarr.json")
            if json.loads(meta.read_text()).get("dimension_names", [None])[0] == SHOT_DIM
        ]
        return cls(LocalStore(path, read_only=True), max(lengths))

    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        buffer = await super().get(key, prototype, byte_range)
        if buffer is None or byte_range is not None or not key.endswith("/zarr.json"):
            return buffer
        meta = json.loads(buffer.to_bytes())
        if meta.get("dimension_names", [None])[0] == SHOT_DIM:
            meta["shape"][0] = self._length
            return prototype.buffer.from_bytes(json.dumps(meta).encode())
        return buffer


def load_values(path: str | Path, ds: xr.Dataset, name: str) -> np.ndarray:
    """The values of variable ``name`` of ``ds`` (opened from the store at ``path``), loaded.

    Raises StoreError naming the store and the array when a chunk cannot be read or decoded
    (a truncated or corrupted file: "Zstd decompression error", "Blosc...", a short read).
    """
    try:
        return np.asarray(ds[name].values)
    except StoreError:
        raise
    # what zarr's codecs and readers raise; numcodecs' blosc raises SystemError on a truncated chunk
    except (OSError, RuntimeError, SystemError, ValueError, TypeError) as exc:
        raise StoreError(
            f"store {path}: array {name!r} cannot be read ({type(exc).__name__}: {exc}); "
            "a chunk file is damaged (truncated or overwritten)"
        ) from exc


def _damaged(path: Path, exc: BaseException) -> StoreError:
    """A StoreError for a store xarray cannot decode; xarray's notes name the variable."""
    notes = " ".join(str(n).splitlines()[0] for n in getattr(exc, "__notes__", []))
    return StoreError(
        f"cannot open store {path}: {type(exc).__name__}: {exc}{' (' + notes + ')' if notes else ''}; "
        "is a file of the store damaged (truncated or overwritten)?"
    )


def read_store_spec(path: str | Path) -> str:
    """The sequence spec (JSON text) the store was created with. Raises StoreError."""
    spec = decode_attrs(read_root_attrs(Path(path))).get("spec")
    if not isinstance(spec, str):
        raise StoreError(f"store {path} has no sequence spec recorded")
    return spec


def _recorded_writer(path: Path, attrs: dict[str, Any]) -> WriterIdentity | None:
    """The lock's holder file, else the writer named in the attributes (a store copied
    without its hidden files)."""
    holder = read_holder(path)
    if holder is not None:
        return holder
    pid, host, started = (attrs.get(k) for k in ("writer_pid", "writer_host", "writer_create_time"))
    if not isinstance(pid, int) or not isinstance(host, str):
        return None
    return WriterIdentity(pid, host, started if isinstance(started, float) else None)


def store_state(path: str | Path) -> dict[str, Any]:
    """The store's group attributes, decoded, plus ``writer_alive``.

    ``error`` is a dict or None, ``expected_shots`` an int or None, ``parameter_units`` a
    dict, ``axes`` the list the writer was opened with or None, ``history`` the recorded
    states (``{"state", "time"}``, oldest first; empty for older stores). Every state but
    finished, failed and interrupted (``initializing``, ``running``, ``stopping``, ...) is in
    progress: ``state`` is then reported as ``crashed`` when the writer is gone: no process
    holds the writer lock, or the recorded writer process (pid and create time) no longer
    runs on this host. Raises StoreError if ``path`` is not a shotflow store.
    """
    path = Path(path)
    attrs = decode_attrs(read_root_attrs(path))
    attrs.pop("coordinates", None)
    if in_progress(attrs.get("state")):
        writer = _recorded_writer(path, attrs)
        dead = writer is not None and writer.is_alive() is False
        attrs["writer_alive"] = not (dead or writer_lock_is_free(path))
        if not attrs["writer_alive"]:
            attrs["state"] = str(SequenceState.CRASHED)
    else:
        attrs["writer_alive"] = False
    return attrs


def open_sequence(path: str | Path, *, completed_only: bool = True, grid: bool = False) -> xr.Dataset:
    """Open the store as a lazily loaded Dataset over ``shot`` (parameters are coordinates).

    Works while the store is being written (reads the live, non-consolidated metadata) and
    after a crash. With ``completed_only`` (default) only shots whose status is completed are
    returned; the data are read lazily (load them with :func:`load_values` to get a StoreError
    naming the array when a chunk is damaged). The attributes are the store's as stored, netCDF-safe (``error`` and
    ``parameter_units`` as JSON text; :func:`store_state` decodes them), so ``to_netcdf``
    keeps them. Raises StoreError if ``path`` is not a readable store, or holds only its
    group metadata (its writer is creating the arrays, or was killed doing so).

    With ``grid`` the completed shots are placed on the scan's axes, outer to inner (e.g.
    ``(rf_power, detuning, repeat, y, x)``): each axis a dimension whose
    coordinate is the loop variable's values (with ``units``) or ``0..n-1`` for a repeat;
    cells of shots not taken hold NaN (NaT for times) and the ``shot`` coordinate gives each
    cell's shot (NaN: not taken); shuffled loops land in scan order. An axis whose range
    depends on an enclosing loop (ragged) becomes the dimension ``index.<axis>`` (0..n-1,
    padded with NaN), its variable a coordinate over the enclosing axes and that dimension
    (also when only its values, not its size, depend on an enclosing loop).
    Raises StoreError saying why when the scan's loops are not nested one inside another
    (sibling loops), or the store records no axes or loop indices (an older store).
    """
    import xarray as xr  # imported here: writer processes need not pay for it

    if grid and not completed_only:
        raise ValueError("grid=True places the completed shots only: do not pass completed_only=False with it")
    path = Path(path)
    attrs = read_root_attrs(path)
    consolidated = not in_progress(attrs.get("state"))
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
            if "conflicting sizes" not in str(exc):
                raise _damaged(path, exc) from exc
            if attempt == OPEN_RETRIES - 1:  # a writer killed while resizing: read a common length
                ds = xr.open_zarr(_CommonLengthStore.over(path), consolidated=False, zarr_format=3)
                break
            time.sleep(RETRY_DELAY_S)
        except (RuntimeError, SystemError, OSError, TypeError) as exc:  # a codec's error decoding a coordinate or time
            raise _damaged(path, exc) from exc
    if STATUS not in ds.variables:
        raise StoreNotReadyError(
            f"store {path} has no shot arrays yet: its writer is creating them, or was stopped while doing so"
        )
    if completed_only or grid:
        completed = np.flatnonzero(load_values(path, ds, STATUS) == ShotStatus.COMPLETED)
        ds = ds.isel(shot=completed)
    if grid:
        return grid_dataset(path, ds, decode_attrs(attrs).get("axes"))
    return ds
