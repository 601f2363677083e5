"""The built-in per-shot analyses on data with known answers, their registry, and the spec's refusals."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from simlab import lab_dict

from devices.analyses import (
    Analysis,
    AnalysisError,
    AnalysisRegistrationError,
    Gaussian2D,
    Peak,
    RoiSum,
    UnknownAnalysisTypeError,
    get_analysis_type,
    known_analysis_types,
    register_analysis,
)
from flows.sequence import SequenceSpec


def _cloud(shape: tuple[int, int], x0: float, y0: float, sx: float, sy: float, amplitude: float = 200.0) -> np.ndarray:
    y, x = np.indices(shape, dtype="float64")
    return amplitude * np.exp(-0.5 * (((x - x0) / sx) ** 2 + ((y - y0) / sy) ** 2)) + 10.0


def test_the_builtins_are_registered_through_the_entry_point() -> None:
    assert {"roi_sum", "gaussian_2d", "peak"} <= set(known_analysis_types())
    assert get_analysis_type("gaussian_2d") is Gaussian2D


def test_roi_sum_sums_the_region_of_interest_only() -> None:
    image = np.arange(48, dtype="uint16").reshape(6, 8)
    assert RoiSum(data="camera.atoms").compute(image) == {"sum": float(image.sum())}
    assert RoiSum(data="camera.atoms", roi=(1, 3, 2, 5)).compute(image) == {"sum": float(image[1:3, 2:5].sum())}
    with pytest.raises(AnalysisError, match="does not fit"):
        RoiSum(data="camera.atoms", roi=(0, 7, 0, 2)).compute(image)
    with pytest.raises(AnalysisError, match="expected an image"):
        RoiSum(data="camera.atoms").compute(np.zeros(5))


@pytest.mark.parametrize("roi", [(3, 3, 0, 2), (0, 2, 5, 1), (-1, 2, 0, 2)])
def test_an_empty_or_negative_roi_is_refused_with_the_field(roi: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValidationError, match="roi"):
        RoiSum(data="camera.atoms", roi=roi)


@settings(max_examples=25, deadline=None)
@given(
    x0=st.floats(8, 40),
    y0=st.floats(8, 24),
    sx=st.floats(1.5, 5),
    sy=st.floats(1.5, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_gaussian_2d_finds_the_centre_and_widths_within_its_errors(
    x0: float, y0: float, sx: float, sy: float, seed: int
) -> None:
    image = _cloud((32, 48), x0, y0, sx, sy) + np.random.default_rng(seed).normal(0, 1.0, (32, 48))
    fit = Gaussian2D(data="camera.atoms").compute(image)
    for name, true in (("x", x0), ("y", y0), ("sigma_x", sx), ("sigma_y", sy)):
        assert abs(fit[name] - true) < 6 * fit[f"{name}_err"] + 1e-6, (name, fit[name], true, fit[f"{name}_err"])
    assert set(fit) == set(Gaussian2D(data="camera.atoms").outputs())


def test_gaussian_2d_in_a_roi_reports_positions_in_the_whole_image() -> None:
    fit = Gaussian2D(data="camera.atoms", roi=(10, 30, 20, 44)).compute(_cloud((32, 48), 31.0, 18.5, 3.0, 2.5))
    assert fit["x"] == pytest.approx(31.0, abs=1e-3) and fit["y"] == pytest.approx(18.5, abs=1e-3)


def test_gaussian_2d_of_a_flat_image_is_an_analysis_error() -> None:
    with pytest.raises(AnalysisError, match="flat"):
        Gaussian2D(data="camera.atoms").compute(np.full((16, 16), 7.0))


@given(position=st.floats(2, 97), width=st.floats(2, 10), height=st.floats(0.5, 100))
def test_peak_finds_the_top_of_a_trace_between_samples(position: float, width: float, height: float) -> None:
    t = np.arange(100, dtype="float64")
    found = Peak(data="scope.trace").compute(height * np.exp(-0.5 * ((t - position) / width) ** 2))
    assert found["position"] == pytest.approx(position, abs=0.1)
    assert found["height"] == pytest.approx(height, rel=0.01)


def test_peak_of_an_image_is_an_analysis_error() -> None:
    with pytest.raises(AnalysisError, match="expected a trace"):
        Peak(data="scope.trace").compute(np.zeros((3, 3)))


class _Twice(Analysis):
    type: Literal["twice"] = "twice"

    def outputs(self):  # noqa: ANN201
        return {}

    def compute(self, value):  # noqa: ANN001, ANN201
        return {}


def test_registration_refuses_a_wrong_class_a_wrong_type_default_and_a_taken_name() -> None:
    with pytest.raises(AnalysisRegistrationError, match="not a concrete Analysis"):
        register_analysis("dict", dict)  # type: ignore[arg-type]
    with pytest.raises(AnalysisRegistrationError, match="Literal"):
        register_analysis("other", _Twice)
    with pytest.raises(AnalysisRegistrationError, match="already registered"):
        register_analysis("roi_sum", type("CopyOfRoiSum", (RoiSum,), {}))
    with pytest.raises(UnknownAnalysisTypeError, match="registered types: .*roi_sum"):
        get_analysis_type("os.system")


def _spec_with(analyses: dict[str, object], **changes: object) -> dict[str, object]:
    return lab_dict(shots=3) | {"analyses": analyses} | changes


@pytest.mark.parametrize(
    ("analyses", "field", "problem"),
    [
        ({"atoms": {"type": "os.system", "data": "camera.atoms"}}, "analyses.atoms", "unknown analysis type"),
        ({"atoms": {"type": "shotflow.tasks:evil", "data": "camera.atoms"}}, "analyses.atoms", "unknown analysis"),
        ({"atoms": {"data": "camera.atoms"}}, "analyses.atoms", "'type' field"),
        ({"atoms": {"type": "roi_sum", "data": "cam.atoms"}}, "analyses.atoms.data", "no device 'cam'"),
        ({"atoms": {"type": "roi_sum", "data": "camera"}}, "analyses.atoms.data", "'<device>.<label>'"),
        ({"atoms": {"type": "roi_sum", "data": "camera.atoms", "roi": [4, 2, 0, 1]}}, "analyses.atoms", "roi"),
        ({"atoms": {"type": "roi_sum", "data": "camera.atoms", "code": "x"}}, "analyses.atoms", "code"),
        ({"at.oms": {"type": "roi_sum", "data": "camera.atoms"}}, "analyses", "at.oms"),
    ],
)
def test_the_spec_refuses_bad_analyses_naming_the_field(analyses: dict[str, object], field: str, problem: str) -> None:
    with pytest.raises(ValidationError) as refused:
        SequenceSpec.model_validate(_spec_with(analyses))
    text = str(refused.value)
    assert field in text and problem in text, text


def test_no_device_may_be_named_analysis() -> None:
    spec = lab_dict(shots=3)
    spec["devices"]["analysis"] = spec["devices"].pop("rf")
    with pytest.raises(ValidationError, match="devices.analysis: 'analysis' is reserved"):
        SequenceSpec.model_validate(spec)


def test_a_spec_with_analyses_round_trips_through_json() -> None:
    spec = SequenceSpec.model_validate(
        _spec_with({"fit": {"type": "gaussian_2d", "data": "camera.atoms", "roi": [0, 8, 0, 8]}})
    )
    again = SequenceSpec.model_validate_json(spec.model_dump_json())
    assert again.analyses == spec.analyses and isinstance(again.analyses["fit"], Gaussian2D)
