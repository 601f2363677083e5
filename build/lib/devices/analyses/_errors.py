"""Errors of the analysis registry and of running an analysis."""

from __future__ import annotations

from collections.abc import Iterable

from devices._errors import ShotflowError

__all__ = ["AnalysisError", "AnalysisRegistrationError", "UnknownAnalysisTypeError"]


class AnalysisRegistrationError(ShotflowError):
    """An analysis type was registered with a wrong class or under a name already taken."""


class UnknownAnalysisTypeError(ShotflowError):
    """No analysis type of this name is registered; the message lists the known ones."""

    def __init__(self, type: str, known: Iterable[str]) -> None:
        names = ", ".join(sorted(known)) or "none"
        super().__init__(f"unknown analysis type {type!r}; registered types: {names}")
        self.type = type


class AnalysisError(ShotflowError):
    """An analysis could not compute its outputs for one shot (its values are recorded as NaN)."""
