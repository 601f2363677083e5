"""The analysis model: settings that name the data they read, declared outputs, and one pure function."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Analysis", "Output"]


class Output(BaseModel):
    """One value an analysis computes per shot: its unit and what it is.

    ``unit`` is pint text ("" when dimensionless), or None for the unit of the data it reads
    (a sum of camera counts is in counts).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: str | None = None
    long_name: str = ""


class Analysis(BaseModel, abc.ABC):
    """A per-shot analysis: its settings (this model, from the spec's ``analyses``) and its computation.

    ``data`` names the data label it reads (``"<device>.<label>"``, e.g. ``camera.atoms``).
    A subclass declares ``type: Literal["name"] = "name"``, its settings as fields, the
    outputs in :meth:`outputs` and computes them in :meth:`compute`. It is pure: no I/O, no
    state between shots; it runs in a worker thread, off the shot's critical path. Raise
    :class:`AnalysisError` (or any exception) when it cannot compute; its outputs are then NaN.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    data: str = Field(description="The data label analysed, DEVICE.LABEL (e.g. camera.atoms).")

    @abc.abstractmethod
    def outputs(self) -> Mapping[str, Output]:
        """The values computed per shot, by field name (the store keeps ``analysis.<name>.<field>``)."""

    @abc.abstractmethod
    def compute(self, value: np.ndarray) -> Mapping[str, Any]:
        """The outputs for one shot's ``value`` of :attr:`data`: a float (or bool) per field of :meth:`outputs`."""
