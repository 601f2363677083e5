"""The built-in analyses: ``roi_sum``, ``gaussian_2d`` (an image) and ``peak`` (a trace).

Positions and widths are in pixels (samples for a trace), counted from 0 at the first pixel
of the whole image, whatever the region of interest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ._analysis import Analysis, Output
from ._errors import AnalysisError
from ._registry import register_analysis

__all__ = ["Gaussian2D", "Peak", "RoiSum", "register_builtins"]

Roi = tuple[int, int, int, int]
"""A region of interest ``(y0, y1, x0, x1)``: rows ``y0 <= y < y1`` and columns ``x0 <= x < x1``."""

MAX_FIT_EVALUATIONS = 2000
"""The most model evaluations a fit may take (bounds its time on a bad image)."""


def _image(value: np.ndarray) -> np.ndarray:
    if value.ndim != 2:
        raise AnalysisError(f"expected an image (2 dimensions), got shape {value.shape}")
    return value.astype("float64", copy=False)


class _WithRoi(Analysis):
    roi: Roi | None = Field(
        None, description="Region of interest (y0, y1, x0, x1): rows y0..y1-1, columns x0..x1-1; none: the whole image."
    )

    @model_validator(mode="after")
    def _check_roi(self) -> _WithRoi:
        if self.roi is not None:
            y0, y1, x0, x1 = self.roi
            if min(self.roi) < 0 or y0 >= y1 or x0 >= x1:
                raise ValueError(f"roi {list(self.roi)}: expected 0 <= y0 < y1 and 0 <= x0 < x1")
        return self

    def _cut(self, value: np.ndarray) -> tuple[np.ndarray, int, int]:
        """The region of interest of the image, and the row and column of its first pixel."""
        image = _image(value)
        if self.roi is None:
            return image, 0, 0
        y0, y1, x0, x1 = self.roi
        if y1 > image.shape[0] or x1 > image.shape[1]:
            raise AnalysisError(f"roi {list(self.roi)} does not fit in the image of shape {image.shape}")
        return image[y0:y1, x0:x1], y0, x0


class RoiSum(_WithRoi):
    """The sum of the pixel values in the region of interest (an atom number, in counts)."""

    type: Literal["roi_sum"] = "roi_sum"

    def outputs(self) -> Mapping[str, Output]:
        return {"sum": Output(long_name=f"sum of {self.data} in the region of interest")}

    def compute(self, value: np.ndarray) -> Mapping[str, Any]:
        cut, _, _ = self._cut(value)
        return {"sum": float(np.sum(cut))}


_GAUSSIAN_FIELDS = ("amplitude", "x", "y", "sigma_x", "sigma_y", "offset")


def _gaussian(coordinates: tuple[np.ndarray, np.ndarray], *p: float) -> np.ndarray:
    y, x = coordinates
    amplitude, x0, y0, sx, sy, offset = p
    return (amplitude * np.exp(-0.5 * (((x - x0) / sx) ** 2 + ((y - y0) / sy) ** 2)) + offset).ravel()


class Gaussian2D(_WithRoi):
    """A 2-D Gaussian fitted to the image: centre, widths (sigma), amplitude and offset, with 1-sigma errors."""

    type: Literal["gaussian_2d"] = "gaussian_2d"

    def outputs(self) -> Mapping[str, Output]:
        described = {
            "amplitude": "peak height above the offset",
            "x": "centre column (pixels)",
            "y": "centre row (pixels)",
            "sigma_x": "width along x, one standard deviation (pixels)",
            "sigma_y": "width along y, one standard deviation (pixels)",
            "offset": "background level",
        }
        units = {"x": "pixel", "y": "pixel", "sigma_x": "pixel", "sigma_y": "pixel"}  # others: the image's
        outputs = {name: Output(unit=units.get(name), long_name=text) for name, text in described.items()}
        outputs |= {
            f"{name}_err": Output(unit=units.get(name), long_name=f"uncertainty of {name}") for name in _GAUSSIAN_FIELDS
        }
        return outputs

    def compute(self, value: np.ndarray) -> Mapping[str, Any]:
        from scipy.optimize import OptimizeWarning, curve_fit

        cut, row, column = self._cut(value)
        if cut.size < len(_GAUSSIAN_FIELDS) + 1 or not np.all(np.isfinite(cut)):
            raise AnalysisError(f"cannot fit a Gaussian to {cut.size} pixels (or some are not finite)")
        y, x = np.indices(cut.shape, dtype="float64")
        # the background is most of the image: its median, not the minimum (a noisy minimum leaves
        # the whole background in the weights, and the moments then guess the image, not the cloud)
        offset = float(np.median(cut))
        weights = np.clip(cut - offset, 0, None)
        total = float(weights.sum())
        if total <= 0:
            raise AnalysisError("the image is flat: no Gaussian to fit")
        x0, y0 = float((weights * x).sum() / total), float((weights * y).sum() / total)
        sx = max(float(np.sqrt((weights * (x - x0) ** 2).sum() / total)), 0.5)
        sy = max(float(np.sqrt((weights * (y - y0) ** 2).sum() / total)), 0.5)
        guess = [float(cut.max()) - offset, x0, y0, sx, sy, offset]
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", OptimizeWarning)
                p, covariance = curve_fit(_gaussian, (y, x), cut.ravel(), p0=guess, maxfev=MAX_FIT_EVALUATIONS)
        except (RuntimeError, OptimizeWarning, ValueError) as exc:
            raise AnalysisError(f"the Gaussian fit did not converge: {exc}") from exc
        errors = np.sqrt(np.diag(covariance))
        if not np.all(np.isfinite(errors)):
            raise AnalysisError("the Gaussian fit has undetermined parameters")
        p[1] += column
        p[2] += row
        p[3], p[4] = abs(p[3]), abs(p[4])
        result = dict(zip(_GAUSSIAN_FIELDS, map(float, p), strict=True))
        result |= {f"{name}_err": float(e) for name, e in zip(_GAUSSIAN_FIELDS, errors, strict=True)}
        return result


class Peak(Analysis):
    """The highest point of a trace: its position (samples, refined between samples) and its height."""

    type: Literal["peak"] = "peak"

    def outputs(self) -> Mapping[str, Output]:
        return {
            "position": Output(unit="", long_name="peak position (samples)"),
            "height": Output(long_name=f"peak value of {self.data}"),
        }

    def compute(self, value: np.ndarray) -> Mapping[str, Any]:
        trace = value.astype("float64", copy=False)
        if trace.ndim != 1 or trace.size == 0:
            raise AnalysisError(f"expected a trace (1 dimension), got shape {value.shape}")
        if not np.all(np.isfinite(trace)):
            raise AnalysisError("the trace has values that are not finite")
        i = int(np.argmax(trace))
        if 0 < i < trace.size - 1:  # a parabola through the three highest samples
            left, top, right = trace[i - 1], trace[i], trace[i + 1]
            curvature = left - 2 * top + right
            if curvature < 0:
                shift = 0.5 * (left - right) / curvature
                return {"position": float(i + shift), "height": float(top - 0.25 * (left - right) * shift)}
        return {"position": float(i), "height": float(trace[i])}


def register_builtins() -> None:
    """Register ``roi_sum``, ``gaussian_2d`` and ``peak`` (the ``builtin`` entry point of ``shotflow.analyses``)."""
    for analysis in (RoiSum, Gaussian2D, Peak):
        register_analysis(analysis.model_fields["type"].default, analysis)
