"""Opening a results store for writing: take the writer lock, then create it or check and reopen it."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._arrays import StoreArrays
from ._attrs import decode_attrs
from ._compact import expand_arrays
from ._errors import StoreError, StoreExistsError, StoreSpecMismatchError
from ._layout import read_root_attrs, remove_partial_files
from ._lock import WriterLock, acquire_writer_lock, is_unborn_store

__all__ = ["checked_axes", "open_store"]

logger = logging.getLogger(__name__)


def checked_axes(axes: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """``axes`` as stored: a list of JSON objects (tuples become lists), or None.

    Raises TypeError if ``axes`` is not a sequence of mappings with string keys whose values
    JSON represents exactly (no NaN or infinity, no other objects).
    """
    if axes is None:
        return None
    if isinstance(axes, (str, bytes, Mapping)) or not isinstance(axes, Sequence):
        raise TypeError(f"axes must be a list of mappings (name, size, unit, ...), not {type(axes).__name__}")
    for i, axis in enumerate(axes):
        if not isinstance(axis, Mapping) or not all(isinstance(key, str) for key in axis):
            raise TypeError(f"axes[{i}] = {axis!r} is not a mapping with string keys")
    try:
        return json.loads(json.dumps([dict(axis) for axis in axes], allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"axes are not JSON-safe: {exc}") from exc


def _same_spec(stored: str, given: str) -> bool:
    try:
        return json.loads(stored) == json.loads(given)
    except ValueError:
        return stored == given


def _check_resumable(path: Path, spec_json: str, axes: list[dict[str, Any]] | None) -> None:
    """Raise StoreSpecMismatchError unless the store was created with this spec and these axes.

    A store without axes (older, or created without them) accepts any.
    """
    attrs = decode_attrs(read_root_attrs(path))
    if not _same_spec(str(attrs.get("spec", "")), spec_json):
        raise StoreSpecMismatchError(
            f"cannot resume {path}: its sequence spec differs from the one given; resume with "
            "the spec stored in the store (see `shotflow show`)"
        )
    stored = attrs.get("axes")
    if stored is not None and stored != axes:
        raise StoreSpecMismatchError(
            f"cannot resume {path}: its scan axes {stored} differ from the ones given ({axes}); "
            "resume with the spec and axes stored in the store (see `shotflow show`)"
        )


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def check_confined(path: Path, root: Path | None) -> None:
    """Raise StoreError unless the store folder ``path`` resolves inside ``root`` (symbolic links
    followed) and holds no symbolic link that resolves outside it; nothing to check for None.

    Called right before the folder is created and again once the writer lock is held, so a
    link swapped in meanwhile (e.g. while the run waited for its devices) is caught.
    """
    if root is None:
        return
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not _inside(real, real_root):
        raise StoreError(f"store {path} resolves to {real}, outside the results folder {real_root}")
    if not os.path.isdir(path):
        return
    for folder, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            entry = os.path.join(folder, name)
            if os.path.islink(entry) and not _inside(os.path.realpath(entry), real_root):
                raise StoreError(
                    f"store {path} holds a symbolic link {entry} to {os.path.realpath(entry)}, "
                    f"outside the results folder {real_root}"
                )


def open_store(
    path: Path,
    *,
    spec_json: str,
    expected_shots: int | None,
    parameter_units: Mapping[str, str],
    axes: list[dict[str, Any]] | None,
    resume: bool,
    confine_to: Path | None = None,
    overrides: Mapping[str, str] | None = None,
) -> tuple[WriterLock, StoreArrays]:
    """Blocking part of :meth:`ShotStoreWriter.open`: lock, then create or reopen (see there for what raises)."""
    check_confined(path, confine_to)
    if resume:
        read_root_attrs(path)  # raises StoreError if there is no store to resume
        lock = acquire_writer_lock(path)
        try:
            check_confined(path, confine_to)
            _check_resumable(path, spec_json, axes)
            remove_partial_files(path)
            expand_arrays(path)  # the writer writes shot by shot: no shards (see _compact)
            return lock, StoreArrays.reopen(path, expected_shots=expected_shots, axes=axes, writer=lock.holder)
        except BaseException:
            lock.release()
            raise
    try:
        path.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        if not is_unborn_store(path):
            raise StoreExistsError(
                f"{path} already exists; choose another store path, or resume it (`shotflow resume {path}`)"
            ) from None
        logger.warning("%s holds only the lock of a run killed before its store was written: reusing it", path)
    lock = acquire_writer_lock(path)
    try:
        check_confined(path, confine_to)
        arrays = StoreArrays.create(
            path,
            spec_json=spec_json,
            expected_shots=expected_shots,
            parameter_units=parameter_units,
            axes=axes,
            overrides=overrides,
            writer=lock.holder,
        )
    except BaseException:
        lock.release()
        raise
    return lock, arrays
