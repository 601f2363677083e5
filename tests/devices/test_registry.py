from collections.abc import Iterator
from typing import Any, Literal

import pytest

import devices
from devices import (
    Device,
    DeviceCompiler,
    DeviceConfiguration,
    DeviceController,
    DeviceRegistrationError,
    UnknownDeviceTypeError,
    _registry,
    get_device_type,
    known_device_types,
    register_device,
)

SIM_TYPES = {"sim.sequencer", "sim.camera", "sim.rf_source", "sim.scope"}


class ToyConfig(DeviceConfiguration):
    type: Literal["test.toy"] = "test.toy"


class ToyController(DeviceController):
    async def run_shot(self, device: Any, instructions: Any, shot: Any) -> None:
        await shot.wait_all_devices_ready()


class OtherController(ToyController):
    pass


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    known_device_types()  # load the real plugins once, then work on a copy
    monkeypatch.setattr(_registry, "_types", dict(_registry._types))
    yield


def register_toy(controller: type[DeviceController] = ToyController) -> devices.DeviceType:
    return register_device(
        "test.toy", configuration=ToyConfig, compiler=DeviceCompiler, device=Device, controller=controller
    )


def test_register_and_get() -> None:
    device_type = register_toy()
    assert get_device_type("test.toy") == device_type
    assert device_type.controller is ToyController and "test.toy" in known_device_types()


def test_registering_the_same_classes_twice_is_harmless() -> None:
    assert register_toy() == register_toy()


def test_registering_other_classes_under_a_taken_name_raises() -> None:
    register_toy()
    with pytest.raises(DeviceRegistrationError, match="already registered"):
        register_toy(OtherController)


def test_wrong_base_class_raises() -> None:
    with pytest.raises(DeviceRegistrationError, match="controller"):
        register_device(
            "test.toy",
            configuration=ToyConfig,
            compiler=DeviceCompiler,
            device=Device,
            controller=object,  # type: ignore[arg-type]
        )


def test_configuration_type_must_match() -> None:
    with pytest.raises(DeviceRegistrationError, match="Literal"):
        register_device(
            "test.other", configuration=ToyConfig, compiler=DeviceCompiler, device=Device, controller=ToyController
        )


def test_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(UnknownDeviceTypeError) as info:
        get_device_type("sim.nope")
    assert SIM_TYPES <= set(info.value.known_types)
    assert "sim.camera" in str(info.value)


def test_sim_types_come_from_the_installed_entry_point() -> None:
    names = {ep.name: ep.value for ep in _registry._entry_points()}
    assert names.get("sim") == "devices.sim:register_all"
    assert SIM_TYPES <= set(known_device_types())


def test_a_broken_plugin_is_logged_and_skipped(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class FakeEntryPoint:
        def __init__(self, name: str, target: Any) -> None:
            self.name, self.value, self._target = name, f"fake:{name}", target

        def load(self) -> Any:
            if isinstance(self._target, Exception):
                raise self._target
            return self._target

    def broken() -> None:
        raise RuntimeError("plugin bug")

    calls = []
    monkeypatch.setattr(_registry, "_types", {})
    monkeypatch.setattr(_registry, "_entry_points_loaded", False)
    monkeypatch.setattr(
        _registry,
        "_entry_points",
        lambda: [
            FakeEntryPoint("missing", ImportError("no module named lab_plugin")),
            FakeEntryPoint("broken", broken),
            FakeEntryPoint("good", lambda: calls.append(register_toy())),
        ],
    )
    with caplog.at_level("ERROR", logger="devices._registry"):
        assert known_device_types() == ["test.toy"]
        assert known_device_types() == ["test.toy"]  # loaded once
    assert len(calls) == 1
    assert "'missing'" in caplog.text and "'broken'" in caplog.text
