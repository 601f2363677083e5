"""Where a run's results go: ``<storage.root>/<sequence name>/<timestamp>.zarr``."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from flows._errors import SpecError
from flows.sequence import SequenceSpec

__all__ = ["resolve_store_path"]

logger = logging.getLogger(__name__)


def _inside(path: Path, root: Path) -> bool:
    """Whether ``path`` lies in ``root`` once symbolic links are followed (a link inside the
    results folder that points elsewhere does not count as inside)."""
    path, root = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return path == root or root in path.parents


def resolve_store_path(
    spec: SequenceSpec,
    *,
    results_root: Path | None = None,
    store: Path | None = None,
    now: datetime | None = None,
) -> Path:
    """The store folder of a new run of ``spec``.

    ``store`` (e.g. ``--store``) is used as given; otherwise the path is
    ``<storage.root>/<name>/<UTC timestamp>.zarr`` (a suffix ``-1``, ``-2``...
    avoids an existing folder). A relative ``storage.root`` is relative to
    ``results_root`` when given, else to the working directory. With
    ``results_root`` (API and deployment runs) the result must stay inside it,
    every symbolic link followed (the folder actually written, not only the base):
    otherwise raises :class:`SpecError` naming ``storage.root`` (or ``store``). The
    store checks it again when it opens the folder (after the locks are taken).
    """
    root_dir = Path(os.path.abspath(results_root)) if results_root is not None else None
    if store is not None:
        path = Path(os.path.abspath(store if root_dir is None else root_dir / store))
        if root_dir is not None and not _inside(path, root_dir):
            raise SpecError(f"store: {store} is outside the results folder {root_dir}")
        return path
    root = Path(spec.storage.root).expanduser()
    base = Path(os.path.abspath(root if root_dir is None else root_dir / root))
    if root_dir is not None and not _inside(base, root_dir):
        raise SpecError(f"storage.root: {spec.storage.root!r} escapes the results folder {root_dir}")
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H-%M-%S")
    folder = base / spec.name
    path = folder / f"{stamp}.zarr"
    suffix = 0
    while path.exists():
        suffix += 1
        path = folder / f"{stamp}-{suffix}.zarr"
    if root_dir is not None and not _inside(path, root_dir):  # e.g. <root>/<storage.root>/<name> is a link
        raise SpecError(
            f"storage.root: {spec.storage.root!r}: the store folder {path} resolves outside "
            f"the results folder {root_dir}"
        )
    return path
