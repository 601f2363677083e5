"""The shots of a store reshaped onto the scan's grid: one dimension per loop axis, outer to inner.

Each completed shot records its position on every enclosing loop (``index.<axis>``); the
shots are unstacked on those positions (xarray's ``unstack``) and reindexed to each axis's
full size, so cells of shots not taken are missing values (NaN, NaT). An axis whose size or
values depend on an enclosing loop (a ragged scan) has the dimension ``index.<axis>``, and its
true values as a coordinate over the enclosing axes and that dimension.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import StoreError
from ._layout import INDEX_PREFIX, SHOT

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["grid_dataset"]


def _chain(path: Path, axes: Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    """The recorded axes if each is the only loop inside the previous one; else StoreError saying why not."""
    if axes is None:
        raise StoreError(
            f"store {path} records no scan axes (written by an older shotflow): "
            "grid=True does not apply; open it with grid=False"
        )
    if not axes:
        raise StoreError(f"store {path}: the scan has no loops, so it has no grid; open it with grid=False")
    for depth, axis in enumerate(axes):
        if axis.get("parent") != (depth - 1 if depth else None) or axis.get("depth") != depth:
            sibling = next((a for a in axes[:depth] if a.get("depth") == axis.get("depth")), None)
            why = (
                f"loops {sibling['name']!r} and {axis['name']!r} are siblings at depth {axis.get('depth')}"
                if sibling is not None
                else f"loop {axis['name']!r} is not the only loop inside the previous one"
            )
            raise StoreError(
                f"store {path}: the scan's loops are not one nested inside another ({why}), so its shots "
                "do not form a grid: grid=True does not apply; open it with grid=False"
            )
    return list(axes)


def _positions(path: Path, ds: xr.Dataset, axes: Sequence[Mapping[str, Any]]) -> list[np.ndarray]:
    if not ds.sizes[SHOT]:
        raise StoreError(f"store {path} has no completed shot to place on the scan's grid")
    names = [f"{INDEX_PREFIX}{a['name']}" for a in axes]
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise StoreError(
            f"store {path} records no per-shot loop index {missing[0]!r} (written by an older shotflow): "
            "grid=True does not apply; open it with grid=False"
        )
    positions = [np.asarray(ds[n].values, dtype=np.int64) for n in names]
    cells = np.stack(positions, axis=1)
    _, first, counts = np.unique(cells, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        shots = ds[SHOT].values
        taken = cells[first[np.argmax(counts > 1)]]
        same = shots[(cells == taken).all(axis=1)]
        raise StoreError(
            f"store {path}: shots {', '.join(str(s) for s in same)} sit at the same grid cell "
            f"{dict(zip((a['name'] for a in axes), taken.tolist(), strict=True))} (shots outside the innermost "
            "loop): grid=True does not apply; open it with grid=False"
        )
    return positions


def _sizes(axes: Sequence[Mapping[str, Any]], positions: Sequence[np.ndarray]) -> list[int]:
    observed = [int(p.max()) + 1 if p.size else 0 for p in positions]
    return [max(a["size"] or 0, seen) for a, seen in zip(axes, observed, strict=True)]


def _is_ragged(ds: xr.Dataset, axis: Mapping[str, Any], position: np.ndarray) -> bool:
    """Whether the axis's size or values depend on an enclosing loop (one position, several values)."""
    if axis["size"] is None:
        return True
    for variable in axis["variables"]:
        if variable in ds.variables:
            values = np.asarray(ds[variable].values, dtype=np.float64)
            taken, first = np.unique(position, return_index=True)
            reference = np.full(int(position.max()) + 1, np.nan)
            reference[taken] = values[first]  # the first shot's value at each position
            if not np.allclose(reference[position], values, rtol=1e-12, atol=0.0, equal_nan=True):
                return True
    return False


def _dimension(axis: Mapping[str, Any], ragged: bool) -> str:
    return f"{INDEX_PREFIX}{axis['name']}" if ragged else str(axis["name"])


def _scatter(values: np.ndarray, cells: tuple[np.ndarray, ...], shape: tuple[int, ...]) -> np.ndarray:
    """``values`` placed at ``cells`` of an array of ``shape``, NaN elsewhere (bools stay bool when complete)."""
    out = np.full(shape, np.nan)
    out[cells] = values
    if values.dtype == np.dtype(bool) and not np.isnan(out).any():
        return out.astype(bool)
    return out


def _axis_coordinates(
    ds: xr.Dataset,
    axes: Sequence[Mapping[str, Any]],
    positions: Sequence[np.ndarray],
    sizes: Sequence[int],
    ragged: Sequence[bool],
) -> dict[str, Any]:
    """Each axis's coordinates: its dimension's values, or its variables' true values over the enclosing axes."""
    dims = [_dimension(a, r) for a, r in zip(axes, ragged, strict=True)]
    coords: dict[str, Any] = {}
    for depth, axis in enumerate(axes):
        if ragged[depth]:
            coords[dims[depth]] = (dims[depth], np.arange(sizes[depth]), {"long_name": f"position on {axis['name']}"})
        elif not axis["variables"]:
            coords[dims[depth]] = (dims[depth], np.arange(sizes[depth]), {"long_name": "repeat number"})
        for variable in axis["variables"]:
            if variable not in ds.variables:
                continue
            attrs = dict(ds[variable].attrs) | ({"units": axis["unit"]} if axis["unit"] else {})
            # ragged: the values depend on the enclosing loops; else one value per position
            over = slice(0, depth + 1) if ragged[depth] else slice(depth, depth + 1)
            cells = tuple(positions[over])
            values = _scatter(np.asarray(ds[variable].values), cells, tuple(sizes[over]))
            coords[variable] = (tuple(dims[over]), values, attrs)
    return coords


def grid_dataset(path: Path, ds: xr.Dataset, axes: Sequence[Mapping[str, Any]] | None) -> xr.Dataset:
    """``ds`` (completed shots over ``shot``) on the dimensions of ``axes`` (the store's ``axes`` attribute).

    Raises StoreError saying why when the axes are not nested one inside
    another, are not recorded, or the shots do not record their positions on them.
    """
    import pandas as pd  # imported here, as xarray: writer processes need neither
    import xarray as xr

    chain = _chain(path, axes)
    positions = _positions(path, ds, chain)
    sizes = _sizes(chain, positions)
    ragged = [_is_ragged(ds, a, p) for a, p in zip(chain, positions, strict=True)]
    dims = [_dimension(a, r) for a, r in zip(chain, ragged, strict=True)]
    coords = _axis_coordinates(ds, chain, positions, sizes, ragged)
    axis_variables = [v for a in chain for v in a["variables"] if v in ds.variables]
    index_names = [f"{INDEX_PREFIX}{a['name']}" for a in chain]
    shots = _scatter(np.asarray(ds[SHOT].values), tuple(positions), tuple(sizes))
    coords[SHOT] = (tuple(dims), shots, {"long_name": "shot index (NaN: not taken)"})
    multi = pd.MultiIndex.from_arrays(positions, names=dims)
    flat = ds.drop_vars([*axis_variables, *index_names, SHOT]).assign_coords(
        xr.Coordinates.from_pandas_multiindex(multi, SHOT)
    )
    grid = flat.unstack(SHOT).reindex({d: np.arange(n) for d, n in zip(dims, sizes, strict=True)})
    grid = grid.drop_vars(dims).assign_coords(coords)
    mixed = [name for name, variable in grid.variables.items() if variable.dtype == object]
    for name in mixed:  # bools with missing cells: 1.0, 0.0 and NaN (netCDF has no object type)
        grid[name] = grid[name].copy(data=np.asarray(grid[name].values, dtype=np.float64))
    for variable in grid.variables.values():
        stored = variable.encoding.get("dtype")
        if stored is not None and np.dtype(stored) != variable.dtype:  # an integer made float by missing cells:
            variable.encoding.pop("dtype")  # written as the floats it is now, NaN kept (not cast back)
    return grid.transpose(*dims, ...)
