"""The spec's ``live_plot``: which variable the Prefect UI plots while the scan runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ._analyses_field import ANALYSIS_PREFIX
from ._fields import FrozenModel

__all__ = ["MIN_LIVE_PLOT_INTERVAL", "LivePlot", "live_plot_problems"]

MIN_LIVE_PLOT_INTERVAL = 2.0
"""The shortest time between two live-plot updates (each one renders a plot and sends it to the server)."""


class LivePlot(FrozenModel):
    """A plot of one variable of the store, redrawn as shots complete, on the flow run's Artifacts tab."""

    data: str = Field(
        "",
        description="The variable plotted: a data label ('camera.atoms': its mean per shot) or an analysis output "
        "('analysis.atoms.sum'). Empty: no live plot.",
    )
    against: str = Field("", description="The x axis: a parameter. Empty: the scanned parameter, else the shot index.")
    every: float = Field(
        5.0,
        ge=MIN_LIVE_PLOT_INTERVAL,
        le=3600,
        allow_inf_nan=False,
        description="Seconds between two updates at most (the plot is redrawn only when shots completed since).",
    )


def live_plot_problems(live_plot: LivePlot, devices: Mapping[str, Any], analyses: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``live_plot`` given the spec's devices and analyses: each problem names its field."""
    if not live_plot.data:
        return []
    owner, dot, rest = live_plot.data.partition(".")
    if not dot or not rest:
        return [f"live_plot.data: {live_plot.data!r} is not '<device>.<label>' or 'analysis.<name>.<field>'"]
    if owner == ANALYSIS_PREFIX:
        name = rest.partition(".")[0]
        if name not in analyses:
            known = ", ".join(sorted(analyses)) or "none"
            return [f"live_plot.data: no analysis {name!r} in analyses (analyses: {known})"]
        return []
    if owner not in devices:
        known = ", ".join(sorted(devices)) or "none"
        return [f"live_plot.data: no device {owner!r} in devices (devices: {known})"]
    return []
