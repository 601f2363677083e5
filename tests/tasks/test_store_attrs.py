"""The attribute rule: netCDF-safe values on disk, structures decoded for readers."""

from __future__ import annotations

import pytest

from tasks.store._attrs import decode_attrs, encode_attrs


def test_structures_become_json_text_and_absent_values_are_omitted() -> None:
    stored = encode_attrs(
        {
            "state": "failed",
            "error": {"shot": 3, "device": "rf"},
            "expected_shots": None,
            "parameter_units": {"x": "m"},
            "flag_values": [0, 1, 2],
            "writer_create_time": 1.5,
        }
    )
    assert stored == {
        "state": "failed",
        "error": '{"shot": 3, "device": "rf"}',
        "parameter_units": '{"x": "m"}',
        "flag_values": [0, 1, 2],
        "writer_create_time": 1.5,
    }
    decoded = decode_attrs(stored)
    assert decoded["error"] == {"shot": 3, "device": "rf"} and decoded["expected_shots"] is None
    assert decoded["parameter_units"] == {"x": "m"}


@pytest.mark.parametrize("value", [True, {"a": 1}, ["a", "b"], [1, None]])
def test_a_value_without_a_netcdf_form_is_refused(value: object) -> None:
    with pytest.raises(TypeError, match="'extra'"):
        encode_attrs({"extra": value})


def test_unparsable_error_text_is_kept_as_its_message() -> None:
    assert decode_attrs({"error": "disk full"})["error"] == {"message": "disk full"}
    assert decode_attrs({})["parameter_units"] == {} and decode_attrs({})["error"] is None
