"""Human views of a results store: a text summary and a quick plot (behind `shotflow show`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._errors import StoreError
from ._records import SequenceState, ShotStatus
from ._store_layout import RESERVED_NAMES
from ._store_reader import open_sequence, store_state

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["describe_store", "plot_store"]

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


def _parameters(ds: xr.Dataset) -> list[str]:
    return [str(name) for name in ds.coords if name not in RESERVED_NAMES]


def _data_variables(ds: xr.Dataset) -> list[str]:
    return [str(name) for name in ds.data_vars if name not in RESERVED_NAMES]


def describe_store(path: str | Path) -> str:
    """A multi-line summary: state (and what it means), shot counts, parameters with units and
    ranges over completed shots, data variables with dims and shapes. Raises StoreError."""
    path = Path(path)
    attrs = store_state(path)
    everything = open_sequence(path, completed_only=False)
    status = everything["status"].values
    ds = everything.isel(shot=np.flatnonzero(status == ShotStatus.COMPLETED))
    state = SequenceState(attrs["state"])
    explanation = _STATE_EXPLANATIONS[state].format(
        path=path, **{k: attrs.get(k) for k in ("writer_pid", "writer_host")}
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
    if attrs.get("error"):
        error = attrs["error"]
        text = (
            ", ".join(f"{k}={v}" for k, v in error.items())
            if isinstance(error, dict)
            else str(error)
        )
        lines.append(f"error    {text}")
    lines.append("parameters")
    for name in _parameters(ds) or []:
        values = ds[name].values
        unit = ds[name].attrs.get("units", "")
        finite = values[~np.isnan(values)] if values.dtype.kind == "f" else values
        if finite.size:
            span = f"{finite.min():.6g} .. {finite.max():.6g}, {np.unique(finite).size} distinct"
        else:
            span = "no value yet"
        lines.append(f"  {name:<24} {f'[{unit}]' if unit else '':<8} {span}")
    lines.append("data variables")
    for name in _data_variables(ds):
        var = ds[name]
        lines.append(
            f"  {name:<24} {var.dtype}  dims ({', '.join(map(str, var.dims))})  shape {var.shape}"
        )
    return "\n".join(lines)


def plot_store(path: str | Path, var: str, against: str, out: Path) -> None:
    """Plot the mean of ``var`` over its non-shot dims against parameter ``against`` (completed
    shots) to a PNG at ``out``. Raises StoreError naming an unknown variable or parameter."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ds = open_sequence(path, completed_only=True)
    if var not in _data_variables(ds):
        raise StoreError(
            f"no data variable {var!r} in {path}; available: {', '.join(_data_variables(ds)) or 'none'}"
        )
    parameters = _parameters(ds)
    if against not in [*parameters, "shot"]:
        raise StoreError(
            f"no parameter {against!r} in {path}; available: {', '.join(parameters) or 'none'}, shot"
        )
    if ds.sizes["shot"] == 0:
        raise StoreError(f"store {path} has no completed shot to plot")
    y = ds[var].astype("float64")
    y = y.mean(dim=[d for d in y.dims if d != "shot"]) if y.ndim > 1 else y
    x = ds[against].values.astype("float64")
    y = y.values
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(x, y, "o", alpha=0.5, label="shots")
    unique = np.unique(x[~np.isnan(x)])
    if unique.size < x.size:  # repeated values: show their mean
        axes.plot(unique, [np.nanmean(y[x == u]) for u in unique], "-", label="mean")
        axes.legend()
    unit = ds[against].attrs.get("units")
    axes.set_xlabel(f"{against} [{unit}]" if unit else against)
    axes.set_ylabel(f"{var} (mean over pixels)" if ds[var].ndim > 1 else var)
    axes.set_title(f"{Path(path).name}: {var} vs {against}")
    figure.savefig(out, format="png", dpi=100)
