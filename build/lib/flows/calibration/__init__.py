"""Calibration flows: scan, fit, check and store a calibrated value that later sequences reference."""

from ._flows import CalibrationResult, calibrate_rabi, calibrate_resonance

__all__ = [
    "CalibrationResult",
    "calibrate_rabi",
    "calibrate_resonance",
]
