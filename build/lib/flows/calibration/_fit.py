"""Calibration analysis: atom numbers from images, line-shape fits and their quality check.

Pure functions of numpy arrays (no Prefect, no store), so they can be tested
on their own and reused by every calibration flow.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

__all__ = [
    "FitQuality",
    "LineFit",
    "atom_numbers",
    "check_fit",
    "fit_lorentzian",
    "fit_rabi",
    "lorentzian",
    "rabi",
]

logger = logging.getLogger(__name__)

MAX_FIT_EVALUATIONS = 20_000


def atom_numbers(images: np.ndarray) -> np.ndarray:
    """Background-subtracted counts of each image of ``images`` (shape ``(shot, rows, cols)``).

    The background of an image is the median of its border pixels, so a cloud
    centred in the picture is counted in full and a uniform offset is removed.
    """
    data = np.asarray(images, dtype=float)
    if data.ndim != 3:
        raise ValueError(f"expected images of shape (shot, rows, cols), got {data.shape}")
    border = np.concatenate([data[:, 0, :], data[:, -1, :], data[:, 1:-1, 0], data[:, 1:-1, -1]], axis=1)
    background = np.median(border, axis=1)
    return (data - background[:, None, None]).sum(axis=(1, 2))


def lorentzian(x: np.ndarray, center: float, width: float, amplitude: float, offset: float) -> np.ndarray:
    """``amplitude / (1 + (2 (x - center) / width)^2) + offset`` (``width`` is the FWHM)."""
    return amplitude / (1.0 + (2.0 * (x - center) / width) ** 2) + offset


def rabi(t: np.ndarray, frequency: float, amplitude: float, offset: float) -> np.ndarray:
    """``amplitude * sin^2(pi * frequency * t) + offset`` (full transfer at ``t = 1 / (2 frequency)``)."""
    return amplitude * np.sin(np.pi * frequency * t) ** 2 + offset


@dataclass(frozen=True)
class LineFit:
    """Best-fit parameters (``names`` order), their standard errors and R^2 of a fit."""

    names: tuple[str, ...]
    values: tuple[float, ...]
    errors: tuple[float, ...]
    r_squared: float
    model: Callable[..., np.ndarray]

    def value(self, name: str) -> float:
        return self.values[self.names.index(name)]

    def error(self, name: str) -> float:
        return self.errors[self.names.index(name)]

    def curve(self, x: np.ndarray) -> np.ndarray:
        """The fitted model at ``x``."""
        return self.model(x, *self.values)


@dataclass(frozen=True)
class FitQuality:
    """Thresholds a fit must pass to become a calibrated value."""

    min_r_squared: float = 0.8
    """Fraction of the data's variance the model must explain."""
    max_relative_error: float = 0.1
    """Largest standard error of the fitted value, relative to the line's width (or the value)."""


def _fit(
    model: Callable[..., np.ndarray],
    names: tuple[str, ...],
    x: np.ndarray,
    y: np.ndarray,
    guess: list[float],
) -> LineFit | None:
    try:
        values, covariance = curve_fit(model, x, y, p0=guess, maxfev=MAX_FIT_EVALUATIONS)
    except (RuntimeError, ValueError) as exc:  # no convergence, or degenerate data
        logger.info("fit did not converge: %s", exc)
        return None
    errors = np.sqrt(np.diag(covariance)) if np.all(np.isfinite(covariance)) else np.full(len(values), math.inf)
    residual = float(np.sum((y - model(x, *values)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    r_squared = 1.0 - residual / total if total > 0 else 0.0
    return LineFit(names, tuple(map(float, values)), tuple(map(float, errors)), r_squared, model)


def fit_lorentzian(x: np.ndarray, y: np.ndarray) -> LineFit | None:
    """Least-squares Lorentzian (peak) fit of ``y(x)``; None when the fit does not converge."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    offset = float(np.percentile(y, 10))
    peak = int(np.argmax(y))
    above = x[y > offset + (y[peak] - offset) / 2]
    width = float(above.max() - above.min()) if above.size > 1 else float(np.ptp(x)) / 10
    guess = [
        float(x[peak]),
        max(width, float(np.ptp(x)) / max(len(x), 1)),
        float(y[peak]) - offset,
        offset,
    ]
    return _fit(lorentzian, ("center", "width", "amplitude", "offset"), x, y, guess)


def fit_rabi(t: np.ndarray, y: np.ndarray) -> LineFit | None:
    """Least-squares Rabi-flop fit of ``y(t)``, started from the strongest Fourier component."""
    t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    order = np.argsort(t)
    t, y = t[order], y[order]
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    spectrum = np.abs(np.fft.rfft(y - y.mean()))
    frequencies = np.fft.rfftfreq(len(y), step)
    # sin^2(pi f t) oscillates at f: the strongest component is at f
    guess_f = float(frequencies[int(np.argmax(spectrum[1:])) + 1]) if len(spectrum) > 1 else 1.0 / np.ptp(t)
    return _fit(
        rabi,
        ("frequency", "amplitude", "offset"),
        t,
        y,
        [guess_f, float(np.ptp(y)), float(y.min())],
    )


def check_fit(
    fit: LineFit | None,
    parameter: str,
    scale: float,
    scan: tuple[float, float],
    quality: FitQuality,
) -> str | None:
    """Why ``fit`` cannot be trusted for ``parameter`` (None when it passes every check).

    Checks: the fit converged with a finite covariance, R^2 reaches
    ``quality.min_r_squared``, the value lies inside ``scan`` and its standard
    error is below ``quality.max_relative_error * scale``.
    """
    if fit is None:
        return "the fit did not converge"
    value, error = fit.value(parameter), fit.error(parameter)
    if not all(math.isfinite(v) for v in fit.errors):
        return "the fit's covariance is not finite (the data do not constrain the model)"
    if fit.r_squared < quality.min_r_squared:
        return f"R^2 = {fit.r_squared:.3f} is below {quality.min_r_squared} (the data do not follow the model)"
    low, high = min(scan), max(scan)
    if not low <= value <= high:
        return f"the fitted {parameter} {value:.6g} lies outside the scanned range [{low:.6g}, {high:.6g}]"
    if not error <= quality.max_relative_error * abs(scale):
        return f"the {parameter}'s standard error {error:.3g} exceeds {quality.max_relative_error} x {abs(scale):.3g}"
    return None
