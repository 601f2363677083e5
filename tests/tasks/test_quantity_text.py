"""Values with units as `shotflow show` prints them (the same prefixes as `shotflow plan`)."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.store import format_quantity
from tasks.store._quantity_text import compact_unit


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (-2e6, "Hz", "-2 MHz"),
        (8.015e7, "Hz", "80.15 MHz"),
        (1e-4, "W", "100 μW"),
        (2e-5, "s", "20 μs"),
        (0.0, "m", "0 m"),
        (0.25, "", "0.25"),
        (True, "", "True"),
        (np.float64(3.0), "m / s", "3 m / s"),
        (float("nan"), "Hz", "nan Hz"),
        (5.0, "not_a_unit", "5 not_a_unit"),
    ],
)
def test_format_quantity(value: float, unit: str, text: str) -> None:
    assert format_quantity(value, unit) == text


def test_compact_unit_scales_to_the_largest_magnitude() -> None:
    scaled, unit = compact_unit(np.array([-2e6, 0.0, 5e5, np.nan]), "Hz")
    np.testing.assert_allclose(scaled, [-2.0, 0.0, 0.5, np.nan])
    assert unit == "MHz"
    assert compact_unit(np.array([1.0, 2.0]), "")[1] == ""
