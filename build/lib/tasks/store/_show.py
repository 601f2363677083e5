"""Human views of a results store: a text summary and a quick plot (behind `shotflow show`)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from tasks.records import SequenceState, ShotStatus

from ._errors import StoreError, StoreQueryError
from ._layout import RESERVED_NAMES, SHOT, read_root_attrs
from ._quantity_text import compact_unit, format_quantity
from ._reader import load_values, open_sequence, store_state

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.axes import Axes

__all__ = ["describe_store", "draw_store", "plot_store"]

_IN_PROGRESS = "the run is {state}; its writer (pid {writer_pid} on {writer_host}) holds the store"
"""The explanation of an in-progress state other than running (initializing, stopping, ...)."""
_STATE_EXPLANATIONS = {
    SequenceState.RUNNING: "a writer (pid {writer_pid} on {writer_host}) is adding shots now",
    SequenceState.FINISHED: "every shot ran",
    SequenceState.FAILED: "the run stopped on an error (below)",
    SequenceState.INTERRUPTED: "the run was cancelled; `shotflow resume {path}` continues it",
    SequenceState.CRASHED: (
        "the writer (pid {writer_pid} on {writer_host}) died without finishing; every shot marked "
        "completed is intact, and `shotflow resume {path}` continues from the first incomplete shot"
    ),
}


def _parameters(path: Path, ds: xr.Dataset) -> list[str]:
    """The scan parameters in the order the scan first set them."""
    order = str(read_root_attrs(path).get("coordinates", "")).split()
    present = {str(name) for name, c in ds.coords.items() if c.dims == (SHOT,) and name not in RESERVED_NAMES}
    return [name for name in order if name in present] + sorted(present - set(order))


def _data_variables(ds: xr.Dataset) -> list[str]:
    return [str(name) for name in ds.data_vars if name not in RESERVED_NAMES]


def _known_values(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values)] if values.dtype.kind == "f" else values


def _span(values: np.ndarray, unit: str) -> str:
    """``-2 MHz .. 2 MHz, 41 distinct``; ``100 µW, constant``; ``False, True``."""
    known = _known_values(values)
    if not known.size:
        return "no value yet"
    distinct = np.unique(known)
    if distinct.size == 1:
        return f"{format_quantity(distinct[0], unit)}, constant"
    if known.dtype.kind == "b":
        return "False, True"
    low, high = (format_quantity(v, unit) for v in (distinct[0], distinct[-1]))
    return f"{low} .. {high}, {distinct.size} distinct"


def describe_store(path: str | Path) -> str:
    """A multi-line summary: state (and what it means), shot counts, the error if any, each
    parameter's range over completed shots with engineering prefixes (``detuning  -2 MHz ..
    2 MHz, 41 distinct``), and each data variable's dtype, dims and sizes. Raises StoreError."""
    path = Path(path)
    attrs = store_state(path)
    everything = open_sequence(path, completed_only=False)
    status = load_values(path, everything, "status")
    ds = everything.isel(shot=np.flatnonzero(status == ShotStatus.COMPLETED))
    state = str(attrs["state"])
    explanation = _STATE_EXPLANATIONS.get(state, _IN_PROGRESS).format(
        path=path, state=state, **{k: attrs.get(k) for k in ("writer_pid", "writer_host")}
    )
    expected = attrs.get("expected_shots")
    counts = {s: int(np.count_nonzero(status == s)) for s in ShotStatus}
    lines = [
        f"store    {path}",
        f"state    {state}: {explanation}",
        (
            f"shots    {counts[ShotStatus.COMPLETED]} completed of "
            f"{expected if expected is not None else 'unknown'} expected ({counts[ShotStatus.FAILED]} failed)"
        ),
        f"created  {attrs.get('created')}   updated {attrs.get('updated')}",
    ]
    error = attrs.get("error")
    if error:
        text = ", ".join(f"{k}={v}" for k, v in error.items()) if isinstance(error, dict) else str(error)
        lines.append(f"error    {text}")
    parameters, variables = _parameters(path, ds), _data_variables(ds)
    width = max(map(len, [*parameters, *variables]), default=0)
    lines.append(f"parameters (over {ds.sizes[SHOT]} completed shots)" if parameters else "parameters  none")
    for name in parameters:
        unit = str(ds[name].attrs.get("units", ""))
        lines.append(f"  {name:<{width}}  {_span(load_values(path, ds, name), unit)}")
    lines.append("data variables" if variables else "data variables  none")
    for name in variables:
        var = ds[name]
        sizes = ", ".join(f"{dim}: {size}" for dim, size in var.sizes.items())
        lines.append(f"  {name:<{width}}  {str(var.dtype):<8} ({sizes})")
    return "\n".join(lines)


def _default_axis(path: Path, ds: xr.Dataset, parameters: list[str]) -> str:
    """The scan parameter when the completed shots scan one: the first parameter that varies,
    provided every other varying one takes a single value for each of its values (derived,
    e.g. ``rf_frequency = 80 MHz + detuning``). Otherwise ``shot``."""
    columns = {name: np.nan_to_num(load_values(path, ds, name).astype("float64"), nan=np.inf) for name in parameters}
    varying = [name for name, values in columns.items() if np.unique(values).size > 1]
    if not varying:
        return SHOT
    first = columns[varying[0]]
    for other in varying[1:]:
        pairs = np.unique(np.column_stack([first, columns[other]]), axis=0)
        if len(pairs) != np.unique(first).size:
            return SHOT
    return varying[0]


def plot_store(path: str | Path, var: str, against: str | None, out: str | Path | BinaryIO) -> str:
    """Plot the mean of ``var`` over its non-shot dims against parameter ``against`` (completed
    shots; repeated values also get their mean) to a PNG at ``out`` (a path or a binary file); return
    the x-axis name.

    ``against=None`` plots against the scan parameter if the shots scan exactly one (derived
    parameters that follow it do not count), else against ``shot``. Raises StoreQueryError
    naming an unknown variable or parameter (and the available ones), StoreError if the
    store has no completed shot.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    against = draw_store(path, var, against, figure.add_subplot())
    figure.savefig(out, format="png", dpi=100)
    return against


def draw_store(path: str | Path, var: str, against: str | None, axes: Axes) -> str:
    """Draw :func:`plot_store`'s plot on matplotlib ``axes`` (a window's, a file's); return the x-axis name.

    Raises as :func:`plot_store` does.
    """
    path = Path(path)
    ds = open_sequence(path, completed_only=True)
    variables, parameters = _data_variables(ds), _parameters(path, ds)
    if var not in variables:
        raise StoreQueryError(
            f"no data variable {var!r} in {path}; available: {', '.join(variables) or 'none'}",
            name=var,
            available=variables,
        )
    if against is not None and against not in [*parameters, SHOT]:
        raise StoreQueryError(
            f"no parameter {against!r} in {path}; available: {', '.join([*parameters, SHOT])}",
            name=against,
            available=[*parameters, SHOT],
        )
    if ds.sizes[SHOT] == 0:
        raise StoreError(f"store {path} has no completed shot to plot")
    against = against if against is not None else _default_axis(path, ds, parameters)
    values = load_values(path, ds, var).astype("float64")
    if values.ndim > 1:  # the mean over the non-shot dims, NaN skipped (as xarray's mean)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN shot gives NaN
            values = np.nanmean(values.reshape(values.shape[0], -1), axis=1)
    y = values
    x, unit = compact_unit(load_values(path, ds, against).astype("float64"), str(ds[against].attrs.get("units", "")))
    axes.plot(x, y, "o", alpha=0.5, label="shots")
    unique = np.unique(x[~np.isnan(x)])
    if unique.size < x.size:  # repeated values: show their mean
        axes.plot(unique, [np.nanmean(y[x == u]) for u in unique], "-", label="mean")
        axes.legend()
    axes.set_xlabel(f"{against} [{unit}]" if unit else against)
    axes.set_ylabel(f"{var} (mean per shot)" if ds[var].ndim > 1 else var)
    axes.set_title(f"{path.name}: {var} vs {against} ({ds.sizes[SHOT]} shots)")
    return against
