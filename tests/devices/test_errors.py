import pickle

import pytest

import devices
from devices import (
    DeviceConfigurationError,
    DeviceError,
    DeviceNotUsed,
    DeviceRegistrationError,
    DeviceTimeoutError,
    ShotCompilationError,
    ShotContextError,
    ShotflowError,
    UnknownDeviceTypeError,
)

ERRORS = [
    DeviceError("cam", "no frame"),
    DeviceTimeoutError("cam", "no answer"),
    ShotCompilationError(4, "seq", "bad ramp"),
    DeviceConfigurationError("seq", "bad channel"),
    UnknownDeviceTypeError("x.y", ["b", "a"]),
    DeviceNotUsed("seq: unused"),
    DeviceRegistrationError("dup"),
    ShotContextError("twice"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_is_a_shotflow_error_and_pickles(error: Exception) -> None:
    assert isinstance(error, ShotflowError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)


def test_retryable_and_attributes() -> None:
    assert DeviceError.retryable is False and DeviceTimeoutError.retryable is True
    assert DeviceTimeoutError("cam", "x").device == "cam"
    error = ShotCompilationError(4, "seq", "bad ramp")
    assert (error.shot_index, error.device) == (4, "seq")
    assert "shot 4" in str(error) and "'seq'" in str(error)


def test_unknown_type_lists_known_types() -> None:
    error = UnknownDeviceTypeError("x.y", ["b", "a"])
    assert error.known_types == ["a", "b"] and "known types: a, b" in str(error)


def test_public_names_resolve() -> None:
    for name in devices.__all__:
        assert getattr(devices, name) is not None
