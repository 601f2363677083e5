"""The 'write your own instrument' example in examples/ runs a shot next to a simulated instrument."""

import importlib.util
import sys
from pathlib import Path

import pytest

from devices import Shot, get_device_type
from devices.sim import RFSourceConfig

pytestmark = pytest.mark.anyio

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "my_instrument.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("my_instrument", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["my_instrument"] = module
    spec.loader.exec_module(module)
    module.register()
    yield module
    sys.modules.pop("my_instrument", None)


async def test_example_instrument_runs_a_shot(example, instrument, sequence, run_shot, entered) -> None:
    assert get_device_type("example.shutter").controller is example.ShutterController
    config = example.ShutterConfig(open_time="open")
    instruments = entered(
        [instrument("shutter", config, sequence), instrument("rf", RFSourceConfig(frequency="1 MHz"), sequence)]
    )
    data = await run_shot(instruments, Shot(0, {"open": 0.005}))
    assert data["shutter.open_time"] >= 0.005 and data["rf.frequency"] == 1e6
