"""The zarr group of one results store, written shot by shot (see ``_layout`` for the layout).

Every method blocks; the writer calls them from its worker thread, one call at a time.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from tasks.records import SequenceState, ShotRecord, ShotStatus

from ._attrs import decode_attrs, encode_attrs
from ._chunk_files import ChunkFiles
from ._errors import StoreError
from ._layout import (
    ATTEMPTS,
    END_TIME,
    FORMAT_VERSION,
    GROW_BLOCK,
    INDEX_PREFIX,
    RESERVED_NAMES,
    SERIES_CHUNK,
    SHOT,
    START_TIME,
    STATUS,
    STATUS_ATTRS,
    TIME_ATTRS,
    data_dims,
    fill_value,
    remove_partial_files,
)
from ._states import history_entry, now_iso
from ._variables import DIMENSIONLESS, checked_layout, coordinate_values, variable_attrs
from ._zarr_io import Write, ZarrLoop, consolidate, resize_all, write_concurrently

if TYPE_CHECKING:
    from ._lock import WriterIdentity

__all__ = ["StoreArrays"]

logger = logging.getLogger(__name__)

ATTRS_INTERVAL_S = 0.5
"""Minimum time between two rewrites of the group attributes while running."""
COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")
"""Every per-shot array's compressor (fast, and what :class:`ChunkFiles` writes without zarr's overhead)."""
CONVENTIONS = "CF-1.10"
"""The group's ``Conventions`` attribute: the CF conventions its attributes follow."""


class StoreArrays:
    """The zarr group of one store, with in-memory mirrors of its per-shot 1-D arrays.

    Mirrors let each batch rewrite whole 1-D chunks (no read-modify-write). Not thread-safe:
    one worker thread at a time.
    """

    def __init__(self, path: Path, group: zarr.Group, *, expected_shots: int | None) -> None:
        self.path = path
        self.group = group
        self.expected_shots = expected_shots
        """The planned shot count (None: unknown); the arrays never grow past it."""
        self.capacity = int(group[STATUS].shape[0])
        self.arrays: dict[str, zarr.Array] = {}
        self.series: dict[str, np.ndarray] = {}
        self.attrs = decode_attrs(group.attrs.asdict())
        """The group attributes, decoded; this writer is the only one that changes them."""
        self.parameters: list[str] = list(str(self.attrs.get("coordinates", "")).split())
        self.layout: dict[str, dict[str, Any]] = checked_layout(self.attrs.get("data_layout"))
        """Data label -> its declared units, long name, dims and coordinates (see ``_variables``)."""
        self.coordinates: dict[str, zarr.Array] = {}
        """The declared coordinates of data dimensions (arrays without the shot dimension)."""
        self._last_attrs = 0.0
        self._io = ZarrLoop()
        self._chunks = ChunkFiles()
        self._identity = _folder_identity(path)
        """(device, inode) of the store folder when opened: a folder deleted or replaced since is noticed."""
        for name, array in group.arrays():
            if (array.metadata.dimension_names or (None,))[0] != SHOT:
                self.coordinates[name] = array
                continue
            self.arrays[name] = array
            if array.ndim == 1 and name != SHOT:
                self.series[name] = array[:] if self.capacity else np.empty(0, array.dtype)

    # creation / reopening

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        spec_json: str,
        expected_shots: int | None,
        parameter_units: Mapping[str, str],
        axes: list[dict[str, Any]] | None,
        writer: WriterIdentity,
        overrides: Mapping[str, str] | None = None,
    ) -> StoreArrays:
        """Create the group (``path`` exists and holds only the lock) with its fixed arrays, ``running``.

        The arrays start with one block (``GROW_BLOCK`` shots, fewer if fewer are expected) and
        grow as shots arrive, so creating a store costs the same for 10 or 10**9 expected shots.
        """
        now = now_iso()
        attrs = {
            "format_version": FORMAT_VERSION,
            "state": str(SequenceState.RUNNING),
            "history": [history_entry(SequenceState.RUNNING, now)],
            "expected_shots": expected_shots,
            "completed_shots": 0,
            "spec": spec_json,
            "parameter_units": dict(parameter_units),
            "axes": axes,
            "overrides": dict(overrides) if overrides else None,
            "coordinates": "",
            "Conventions": CONVENTIONS,
            "created": now,
            "updated": now,
            **_writer_attrs(writer),
        }
        group = zarr.open_group(str(path), mode="a", zarr_format=3, attributes=encode_attrs(attrs))
        capacity = GROW_BLOCK if expected_shots is None else min(expected_shots, GROW_BLOCK)
        series = {
            STATUS: ("uint8", STATUS_ATTRS),
            START_TIME: ("float64", {"long_name": "shot start time", **TIME_ATTRS}),
            END_TIME: ("float64", {"long_name": "shot end time", **TIME_ATTRS}),
            ATTEMPTS: ("int32", {"long_name": "attempts made for the shot", "units": DIMENSIONLESS}),
        }
        for name, (dtype, attributes) in series.items():
            _create_series(group, name, capacity, np.dtype(dtype), attributes)
        shot = _create_series(
            group, SHOT, capacity, np.dtype("int64"), {"long_name": "shot index", "units": DIMENSIONLESS}
        )
        if capacity:
            shot[:] = np.arange(capacity)
        return cls(path, group, expected_shots=expected_shots)

    @classmethod
    def reopen(
        cls,
        path: Path,
        *,
        expected_shots: int | None,
        axes: list[dict[str, Any]] | None,
        writer: WriterIdentity,
    ) -> StoreArrays:
        """Open an existing store for resuming: drop consolidated metadata, repair shapes, mark it ``running``.

        The attributes are rewritten in this format (a format-1 store becomes format 2); the
        history goes on; ``axes`` are kept (a store without axes gets the ones given).
        """
        group = zarr.open_group(str(path), mode="r+", zarr_format=3, use_consolidated=False)
        arrays = cls(path, group, expected_shots=expected_shots)
        shapes = {a.shape[0] for a in arrays.arrays.values()}
        if len(shapes) > 1:  # a killed resize: repaired while the consolidated metadata stands
            arrays.capacity = 0
            arrays._grow_to(max(shapes), exact=True)
        arrays.update_attrs(
            {
                "format_version": FORMAT_VERSION,
                "state": str(SequenceState.RUNNING),
                "history": [*arrays.history, history_entry(SequenceState.RUNNING)],
                "expected_shots": expected_shots,
                "axes": arrays.attrs.get("axes") or axes,
                "Conventions": CONVENTIONS,
                **_writer_attrs(writer),
            }
        )  # rewriting zarr.json without consolidated metadata: live readers see new shots
        return arrays

    def declare(self, layout: Mapping[str, Mapping[str, Any]]) -> None:
        """Record what each data label is (see ``_variables``), before its first write.

        Arrays created from then on carry the declared units, long name, dims and coordinates;
        arrays that already exist (a resumed store) keep theirs. Saved with the next attributes.
        """
        self.layout = checked_layout(layout)
        self.attrs["data_layout"] = self.layout

    # writing

    def write_batch(self, records: Sequence[ShotRecord]) -> None:
        """Write records durably: every data chunk, then the 1-D chunks, then the status marks.

        Raises StoreError naming the store, the shots and the system's reason (``No space left
        on device (ENOSPC)``, ``File too large (EFBIG)``, ...) when the disk refuses a write, or
        when the store folder was deleted or replaced (:meth:`check_same_folder`).
        """
        if not records:
            return
        self.check_same_folder()
        try:
            self._write_batch(records)
        except OSError as exc:
            shots = sorted(r.index for r in records)
            span = f"shot {shots[0]}" if len(shots) == 1 else f"shots {shots[0]}..{shots[-1]}"
            raise StoreError(f"store {self.path}: writing {span} failed: {describe_os_error(exc)}") from exc

    def _write_batch(self, records: Sequence[ShotRecord]) -> None:
        self._grow_to(max(r.index for r in records) + 1)
        writes: list[Write] = []
        for record in records:
            writes.extend(self._data_writes(record))
        self._chunks.write(writes, self._io)  # each phase completes before the next starts
        chunks = sorted({r.index // SERIES_CHUNK for r in records})
        series = [w for name in self.series if name != STATUS for w in self._series_writes(name, chunks)]
        self._chunks.write(series, self._io)
        for record in records:
            self.series[STATUS][record.index] = int(record.status)
        self._chunks.write(self._series_writes(STATUS, chunks), self._io)
        if time.monotonic() - self._last_attrs >= ATTRS_INTERVAL_S:
            self.update_attrs({})

    def _data_writes(self, record: ShotRecord) -> list[Write]:
        """Fill the mirrors with ``record``; return the per-shot chunk writes of its arrays."""
        i, writes = record.index, []
        if record.status != ShotStatus.FAILED:
            for label, value in record.data.items():
                value = np.asarray(value)
                if value.ndim == 0:
                    self._ensure_series(label, value.dtype, variable_attrs(self.layout.get(label), label))[i] = value
                else:
                    writes.append((self._ensure_data(label, value), i, value))
        for name, value in record.parameters.items():
            kind = np.dtype(bool) if isinstance(value, (bool, np.bool_)) else np.dtype("float64")
            self._ensure_parameter(name, kind)[i] = value
        for axis, position in record.indices.items():
            self._ensure_parameter(f"{INDEX_PREFIX}{axis}", np.dtype("int64"))[i] = position
        self.series[START_TIME][i] = record.start_time
        self.series[END_TIME][i] = record.end_time
        self.series[ATTEMPTS][i] = record.attempts
        return writes

    def _series_writes(self, name: str, chunks: Iterable[int]) -> list[Write]:
        """Whole-chunk writes of mirror ``name`` (no read-modify-write)."""
        array, mirror, writes = self.arrays[name], self.series[name], []
        for chunk in chunks:
            start, stop = (
                chunk * SERIES_CHUNK,
                min((chunk + 1) * SERIES_CHUNK, self.capacity),
            )
            writes.append((array, slice(start, stop), mirror[start:stop].copy()))
        return writes

    def _ensure_data(self, label: str, value: np.ndarray) -> np.ndarray | zarr.Array:
        array = self.arrays.get(label)
        if array is None:
            array = self.group.create_array(
                label,
                shape=(self.capacity, *value.shape),
                chunks=(1, *value.shape),
                dtype=value.dtype,
                fill_value=fill_value(value.dtype),
                compressors=[COMPRESSOR],
                dimension_names=self._data_dims(label, value.shape),
                attributes=encode_attrs(variable_attrs(self.layout.get(label), label)),
                config={"write_empty_chunks": True},
            )
            self.arrays[label] = array
        return array

    def _data_dims(self, label: str, shape: tuple[int, ...]) -> list[str]:
        """The dims of data ``label`` (shot first): the declared names, each with its coordinate
        written; a name another variable uses with another size or coordinate gets ``<label>.``
        in front, as do undeclared dims."""
        entry = self.layout.get(label) or {}
        declared = entry.get("dims")
        if not isinstance(declared, list) or len(declared) != len(shape):
            return data_dims(label, len(shape))
        names = []
        for dim, size in zip(declared, shape, strict=True):
            coord = (entry.get("coords") or {}).get(dim)
            values = coordinate_values(coord, size) if coord else None
            name = dim if self._dim_fits(dim, size, values) else f"{label}.{dim}"
            if values is not None and name not in self.coordinates:
                self.coordinates[name] = self._create_coordinate(name, values, coord, dim)
            names.append(name)
        return [SHOT, *names]

    def _dim_fits(self, dim: str, size: int, values: np.ndarray | None) -> bool:
        """Whether data dimension ``dim`` (of ``size``, with coordinate ``values``) can share its name."""
        if dim in RESERVED_NAMES or dim in self.attrs.get("parameter_units", {}) or dim in self.arrays:
            return False
        if dim in self.coordinates:
            return values is not None and np.array_equal(self.coordinates[dim][:], values)
        used = [
            length
            for array in self.arrays.values()
            for name, length in zip(array.metadata.dimension_names or (), array.shape, strict=False)
            if name == dim
        ]
        return not used or (values is None and all(length == size for length in used))

    def _create_coordinate(self, name: str, values: np.ndarray, coord: Mapping[str, Any], dim: str) -> zarr.Array:
        attrs = {"long_name": str(coord.get("long_name") or dim), "units": str(coord.get("units") or DIMENSIONLESS)}
        array = self.group.create_array(
            name, shape=values.shape, dtype=values.dtype, dimension_names=[name], attributes=encode_attrs(attrs)
        )
        write_concurrently([(array, slice(None), values)], self._io)  # as every chunk write
        return array

    def _ensure_series(self, name: str, dtype: np.dtype, attributes: dict[str, Any]) -> np.ndarray:
        if name not in self.series:
            self.arrays[name] = _create_series(self.group, name, self.capacity, dtype, attributes)
            self.series[name] = np.full(self.capacity, fill_value(dtype), dtype)
        return self.series[name]

    def _ensure_parameter(self, name: str, dtype: np.dtype) -> np.ndarray:
        if name not in self.series:
            self.parameters.append(name)
            # list it as a coordinate before creating it, so readers never see it as data
            self.update_attrs({"coordinates": " ".join(self.parameters)})
            unit = self.attrs["parameter_units"].get(name)
            attributes = {"long_name": name} | ({"units": unit} if unit is not None and dtype.kind == "f" else {})
            if name.startswith(INDEX_PREFIX):
                axis = name[len(INDEX_PREFIX) :]
                attributes = {"long_name": f"position on the {axis} axis, in scan order", "units": DIMENSIONLESS}
            self._ensure_series(name, dtype, attributes)
        return self.series[name]

    def _grow_to(self, needed: int, *, exact: bool = False) -> None:
        """Give the arrays and mirrors room for ``needed`` shots: whole blocks, at least a quarter
        more than now (amortised O(1) per shot), never past the expected count."""
        if needed <= self.capacity:
            return
        new = needed
        if not exact:
            new = _round_up(max(needed, self.capacity + self.capacity // 4), GROW_BLOCK)
            if self.expected_shots is not None:
                new = max(needed, min(new, self.expected_shots))
        old = min(a.shape[0] for a in self.arrays.values())
        self._resize(new)
        for name, mirror in self.series.items():
            grown = np.full(new, fill_value(mirror.dtype), mirror.dtype)
            keep = min(len(mirror), new)
            grown[:keep] = mirror[:keep]
            self.series[name] = grown
        self.arrays[SHOT][old:new] = np.arange(old, new)
        self.capacity = new
        logger.debug("store %s grown to %d shots", self.path, new)

    def _trim(self) -> None:
        written = np.flatnonzero(self.series[STATUS] != ShotStatus.PENDING)
        size = int(written[-1]) + 1 if written.size else 0
        if size < self.capacity:
            self._resize(size)
            self.series = {name: mirror[:size] for name, mirror in self.series.items()}
            self.capacity = size

    def _resize(self, length: int) -> None:
        """Give every array ``length`` shots so that a kill at any moment leaves a store that plain
        ``xarray.open_zarr`` opens.

        The array metadata files are rewritten one by one, so a kill in between leaves arrays of
        different lengths ("conflicting sizes" for xarray). Before resizing consistent arrays,
        their metadata is consolidated into the group's ``zarr.json`` (one atomic file write):
        readers that use it (xarray by default) see every array at the old, common length. Once
        all arrays are resized the group attributes are rewritten without it, so live readers
        see the live metadata again. Arrays that are already inconsistent (repairing a killed
        resize) keep the consolidated metadata written before that kill until they are repaired.
        """
        if len({a.shape[0] for a in self.arrays.values()}) == 1:
            consolidate(self.path)
        resize_all(self.arrays.values(), length, self._io)
        self.update_attrs({})

    def close(self) -> None:
        """Stop the event loop of the zarr I/O (idempotent; a later write starts a new one)."""
        self._io.close()

    def check_same_folder(self) -> None:
        """Raise StoreError if the store folder is gone or is not the one opened (deleted, moved,
        replaced): zarr would silently recreate folders on the next write."""
        try:
            now = _folder_identity(self.path)
        except OSError as exc:
            raise StoreError(f"store {self.path} was deleted while the run wrote it ({exc.strerror})") from exc
        if now != self._identity or not (self.path / "zarr.json").is_file():
            raise StoreError(
                f"store {self.path} was replaced while the run wrote it (not the folder it opened); "
                "nothing more is written there"
            )

    # attributes and the end

    def completed_count(self) -> int:
        """Number of shots whose status is completed."""
        return int(np.count_nonzero(self.series[STATUS] == ShotStatus.COMPLETED))

    def update_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Rewrite the group attributes with ``attrs`` plus the completed count and time.

        One atomic write of the whole set; an attribute set to None is removed.
        """
        self.attrs.update({**attrs, "completed_shots": self.completed_count(), "updated": now_iso()})
        self.group.attrs.put(encode_attrs(self.attrs))
        self._last_attrs = time.monotonic()

    @property
    def history(self) -> list[dict[str, Any]]:
        """The recorded states, oldest first (empty for a store older than the history)."""
        history = self.attrs.get("history")
        return list(history) if isinstance(history, list) else []

    def record_states(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Append ``entries`` (``{"state", "time"}``) to the history; the last one becomes ``state``."""
        if entries:
            self.update_attrs({"state": entries[-1]["state"], "history": [*self.history, *map(dict, entries)]})

    def finalize(
        self,
        state: SequenceState,
        error: Mapping[str, Any] | None,
        history: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Record ``history`` then the final state; trim, remove temp files, consolidate.

        Trimming cuts the arrays after the last written shot (the rest were only pending);
        ``expected_shots`` keeps the planned count.

        The state is recorded even if trimming fails. Raises StoreError, after recording the
        state, if trimming or consolidating failed; the attribute write's own error (the state
        could not be recorded) otherwise.
        """
        self.check_same_folder()  # recording the end in a recreated folder would fake a store
        problem: Exception | None = None
        try:
            self._trim()
        except Exception as exc:  # noqa: BLE001 - the final state is recorded first, then reported
            problem = exc
        self.update_attrs(
            {
                "state": str(state),
                "history": [*self.history, *map(dict, history), history_entry(state)],
                "error": dict(error) if error else None,
                "ended": now_iso(),
            }
        )
        try:
            remove_partial_files(self.path)
            consolidate(self.path)
        except Exception as exc:  # noqa: BLE001 - reported below, the state being recorded
            problem = problem or exc
        finally:
            self.close()
        if problem is not None:
            raise StoreError(f"store {self.path} recorded {state} but could not be finalized: {problem}") from problem


def describe_os_error(exc: OSError) -> str:
    """``No space left on device (ENOSPC)``: the system's text and the errno's name."""
    name = errno.errorcode.get(exc.errno or 0)
    text = exc.strerror or str(exc)
    return f"{text} ({name})" if name else text


def _folder_identity(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_dev, info.st_ino


def _writer_attrs(writer: WriterIdentity) -> dict[str, Any]:
    return {
        "writer_pid": writer.pid,
        "writer_host": writer.host,
        "writer_create_time": writer.create_time,
    }


def _create_series(
    group: zarr.Group,
    name: str,
    capacity: int,
    dtype: np.dtype,
    attributes: dict[str, Any],
) -> zarr.Array:
    return group.create_array(
        name,
        shape=(capacity,),
        chunks=(SERIES_CHUNK,),
        dtype=dtype,
        fill_value=fill_value(dtype) if name != SHOT else -1,
        compressors=[COMPRESSOR],
        dimension_names=[SHOT],
        attributes=encode_attrs(attributes),
        config={"write_empty_chunks": True},
    )


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block
