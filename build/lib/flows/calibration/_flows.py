"""Calibration flows: a scan, a fit of its results, a calibrated value for later sequences.

``calibrate-resonance`` scans a frequency and fits a Lorentzian to the atom
number; ``calibrate-rabi`` scans a pulse duration and fits a Rabi flop, giving
the pi-pulse time. The scan is any :class:`SequenceSpec` run as a
``run-sequence`` subflow (with the hardware locks and the store of every run).
A fit that passes its quality check is stored as a Prefect Variable (see
:func:`flows.store_calibrated`), which sequences read as ``calibrated.NAME``;
one that fails leaves the last good value untouched and fails the flow run.
Either way a report artifact shows the data, the fit and the verdict.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import anyio
import numpy as np
from prefect import flow
from prefect.artifacts import acreate_markdown_artifact
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.states import Cancelled
from pydantic import BaseModel, Field

from flows._errors import CalibrationError
from flows.run import SequenceResult, run_sequence, store_calibrated
from flows.sequence import SequenceSpec
from tasks.store import compact_unit, format_quantity, open_sequence

from ._fit import FitQuality, LineFit, atom_numbers, check_fit, fit_lorentzian, fit_rabi

__all__ = ["CalibrationResult", "calibrate_rabi", "calibrate_resonance"]

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class CalibrationResult(BaseModel):
    """A stored calibration: its value (SI, in ``unit``) and how it was obtained."""

    name: str
    value: float
    unit: str
    uncertainty: float
    r_squared: float
    store: str
    flow_run: str | None
    timestamp: str


class _Analysis(BaseModel):
    x: list[float]
    y: list[float]
    unit: str


def _load(store: str, variable: str, data: str) -> _Analysis:
    ds = open_sequence(store)
    scanned = [str(n) for n, c in ds.coords.items() if c.dims == ("shot",) and n != "shot"]
    if variable not in scanned:
        known = ", ".join(sorted(scanned))
        raise CalibrationError(variable, f"the scan has no parameter {variable!r} (it has: {known})")
    if data not in ds.data_vars:
        known = ", ".join(sorted(str(v) for v in ds.data_vars))
        raise CalibrationError(variable, f"the scan recorded no data {data!r} (it has: {known})")
    x = np.asarray(ds[variable].values, dtype=float)
    values = np.asarray(ds[data].values)
    y = atom_numbers(values) if values.ndim == 3 else values.reshape(len(x), -1).sum(axis=1).astype(float)
    return _Analysis(x=x.tolist(), y=y.tolist(), unit=str(ds[variable].attrs.get("units", "")))


def _plot_png(analysis: _Analysis, fit: LineFit | None, title: str) -> bytes:
    buffer = io.BytesIO()
    _figure(analysis, fit, title).savefig(buffer, format="png")
    return buffer.getvalue()


def _figure(analysis: _Analysis, fit: LineFit | None, title: str) -> Figure:
    """The report's plot: the data and the fit, the x axis in engineering units (MHz, us...)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    x, y = np.asarray(analysis.x), np.asarray(analysis.y)
    shown, unit = compact_unit(x, analysis.unit)  # 79.5 MHz, not 7.95e7 Hz with an offset
    largest = int(np.argmax(np.abs(x))) if x.size else 0
    scale = float(shown[largest] / x[largest]) if x.size and x[largest] != 0 else 1.0
    axes.plot(shown, y, "o", markersize=4, label="data")
    if fit is not None:
        fine = np.linspace(x.min(), x.max(), 400)
        axes.plot(fine * scale, fit.curve(fine), "-", label="fit")
    axes.ticklabel_format(axis="x", useOffset=False)
    axes.set_xlabel(f"{title} ({unit})" if unit else f"{title} scan")
    axes.set_ylabel("atom number")
    axes.legend()
    figure.tight_layout()
    return figure


_RECIPROCAL = {"s": "Hz", "Hz": "s"}
"""The unit of a rate fitted on a scan in the key's unit (a Rabi frequency on a duration scan)."""


def _parameter_unit(parameter: str, scan_unit: str) -> str:
    """The unit of a fit parameter: the scan's for a position or a width, its reciprocal for a frequency."""
    if parameter in ("center", "width"):
        return scan_unit
    if parameter == "frequency":
        return _RECIPROCAL.get(scan_unit, "")
    return ""  # amplitudes and offsets are atom numbers


def _report(name: str, analysis: _Analysis, fit: LineFit | None, problem: str | None, store: str) -> str:
    verdict = "accepted" if problem is None else f"rejected: {problem}"
    lines = [
        f"# Calibration `{name}`: {verdict}",
        "",
        "| | |",
        "|---|---|",
        f"| store | `{store}` |",
    ]
    if fit is not None:
        lines.append(f"| R^2 | {fit.r_squared:.4f} |")
        lines += [
            f"| {n} | {format_quantity(v, _parameter_unit(n, analysis.unit))} ± "
            f"{format_quantity(e, _parameter_unit(n, analysis.unit), digits=2)} |"
            for n, v, e in zip(fit.names, fit.values, fit.errors, strict=True)
        ]
    image = base64.b64encode(_plot_png(analysis, fit, name)).decode("ascii")
    lines += ["", f"![fit](data:image/png;base64,{image})", ""]
    return "\n".join(lines)


async def _calibrate(
    spec: SequenceSpec,
    name: str,
    variable: str,
    data: str,
    fitter: Callable[[np.ndarray, np.ndarray], LineFit | None],
    evaluate: Callable[[LineFit], tuple[float, float, str | None]],
    unit: str,
) -> Any:
    run_logger = get_run_logger()
    state = await run_sequence(spec, return_state=True)
    if state.is_cancelled():
        return Cancelled(message=f"calibration {name!r}: the scan was interrupted; nothing stored")
    if not state.is_completed():
        raise CalibrationError(name, f"the scan did not finish ({state.message})")
    scan: SequenceResult = await state.aresult()

    def analyse() -> tuple[LineFit | None, float, float, str | None, str]:
        analysis = _load(scan.store, variable, data)
        fit = fitter(np.asarray(analysis.x), np.asarray(analysis.y))
        value, error, problem = evaluate(fit) if fit is not None else (math.nan, math.nan, "the fit did not converge")
        return (
            fit,
            value,
            error,
            problem,
            _report(name, analysis, fit, problem, scan.store),
        )

    fit, value, error, problem, report = await anyio.to_thread.run_sync(analyse)
    try:
        await acreate_markdown_artifact(
            report,
            key="calibration-" + re.sub(r"[^a-z0-9-]", "-", name.lower()),
            description=f"calibration {name}",
        )
    except Exception as exc:  # noqa: BLE001 - the report must not decide the calibration
        run_logger.warning("could not publish the calibration report: %s", exc)
    if problem is not None or fit is None:
        raise CalibrationError(name, f"{problem}; the previous value of calibrated.{name} is kept")
    context = FlowRunContext.get()
    flow_run = str(context.flow_run.id) if context is not None and context.flow_run is not None else None
    record = await store_calibrated(name, value, unit, error, flow_run)
    run_logger.info(
        "calibrated.%s = %.9g ± %.2g %s (R^2 %.4f)",
        name,
        value,
        error,
        unit,
        fit.r_squared,
    )
    return CalibrationResult(
        name=name,
        value=value,
        unit=unit,
        uncertainty=error,
        r_squared=fit.r_squared,
        store=scan.store,
        flow_run=flow_run,
        timestamp=record["timestamp"],
    )


@flow(name="calibrate-resonance", validate_parameters=True)
async def calibrate_resonance(
    spec: SequenceSpec,
    variable: Annotated[str, Field(description="The scanned frequency parameter (in Hz).")] = "detuning",
    data: Annotated[str, Field(description="The image data whose atom number is fitted.")] = "camera.atoms",
    name: Annotated[str, Field(pattern=_NAME, description="Stored as calibrated.NAME.")] = "resonance",
    min_r_squared: Annotated[float, Field(ge=0, le=1)] = 0.8,
    max_relative_error: Annotated[
        float,
        Field(gt=0, description="Largest center error, as a fraction of the linewidth."),
    ] = 0.1,
) -> CalibrationResult:
    """Run ``spec`` (a frequency scan), fit a Lorentzian to the atom number, store its center.

    The center is stored as ``calibrated.<name>`` (Hz) when the fit converges
    with a finite covariance, R^2 >= ``min_r_squared``, the center lies inside
    the scan and its standard error is below ``max_relative_error`` times the
    fitted linewidth. Otherwise raises :class:`CalibrationError` (the flow run
    fails) and the previous value is kept. A failed scan fails the calibration;
    an interrupted one ends it Cancelled.
    """
    quality = FitQuality(min_r_squared=min_r_squared, max_relative_error=max_relative_error)

    def evaluate(fit: LineFit) -> tuple[float, float, str | None]:
        problem = check_fit(fit, "center", fit.value("width"), fit_span[0], quality)
        if problem is None and fit.value("amplitude") <= 0:
            problem = "the fitted line is a dip, not a peak"
        return fit.value("center"), fit.error("center"), problem

    fit_span: list[tuple[float, float]] = []

    def fitter(x: np.ndarray, y: np.ndarray) -> LineFit | None:
        fit_span.append((float(x.min()), float(x.max())))
        return fit_lorentzian(x, y)

    return await _calibrate(spec, name, variable, data, fitter, evaluate, "Hz")


@flow(name="calibrate-rabi", validate_parameters=True)
async def calibrate_rabi(
    spec: SequenceSpec,
    variable: Annotated[str, Field(description="The scanned pulse duration (in s).")] = "pulse_duration",
    data: Annotated[str, Field(description="The image data whose atom number is fitted.")] = "camera.atoms",
    name: Annotated[str, Field(pattern=_NAME, description="Stored as calibrated.NAME.")] = "pi_pulse",
    min_r_squared: Annotated[float, Field(ge=0, le=1)] = 0.8,
    max_relative_error: Annotated[float, Field(gt=0, description="Largest pi-time error, as a fraction of it.")] = 0.05,
) -> CalibrationResult:
    """Run ``spec`` (a pulse-duration scan), fit a Rabi flop, store the pi-pulse time ``1 / (2 f)``.

    Same quality checks as :func:`calibrate_resonance` (the pi time must lie
    inside the scan, its error below ``max_relative_error`` of it).
    """
    quality = FitQuality(min_r_squared=min_r_squared, max_relative_error=max_relative_error)
    span: list[tuple[float, float]] = []

    def fitter(t: np.ndarray, y: np.ndarray) -> LineFit | None:
        span.append((float(t.min()), float(t.max())))
        return fit_rabi(t, y)

    def evaluate(fit: LineFit) -> tuple[float, float, str | None]:
        frequency, error = abs(fit.value("frequency")), fit.error("frequency")
        pi_time = 1.0 / (2.0 * frequency) if frequency > 0 else float("inf")
        pi_error = pi_time * error / frequency if frequency > 0 else float("inf")
        problem = check_fit(fit, "frequency", frequency, (0.0, float("inf")), quality)
        if problem is None and not span[0][0] <= pi_time <= span[0][1]:
            problem = f"the pi time {pi_time:.6g} s lies outside the scanned range"
        return pi_time, pi_error, problem

    return await _calibrate(spec, name, variable, data, fitter, evaluate, "s")
